"""Image -> group graph -> networkx analysis -> figures.

`ImageToGroupGraph` clusters a CamVid frame into data-adaptive groups
(differentiable SLIC, paper Sec. 4) and links them with direction-typed,
weighted edges (Eqs. 4 and 7). `pyg_hgconv.viz.to_networkx` turns the group
graph into a `networkx.DiGraph` (nodes: centroid `pos`, pixel count `mass`,
`feature_norm`; edges: `edge_type`, `direction`, `edge_weight`), on which the
example measures the degree distribution, the connected components, the edge
count per direction and how well the direction types agree with the geometry
of the centroids. It writes

* `group_graph_networkx.png`: the graph over the frame, the degree histogram,
  the edges per direction and the group sizes;
* `group_graph_networkx_panels.png`: the four panels of the paper's Fig. 11
  (importance map, sampled centres, clustering, summed adjacency);
* `group_graph_networkx_adjacency.png`: the direction-wise adjacency matrices
  before and after noise-canceling (the paper's Fig. 5, top left).

The groups are made from the RGB frame itself (no learned embedding), so
they follow colour edges rather than the semantic boundaries a trained
HG-CNN learns.

Run:  python examples/group_graph_networkx.py [--size 180,240] [--out docs/figures]
"""
from __future__ import annotations

from collections import Counter

import _common
import networkx as nx
import numpy as np
import torch

import pyg_hgconv as H
from pyg_hgconv import viz
from pyg_hgconv.utils.directions import OFFSETS, SELF_LOOP

NAME = "group_graph_networkx"


def analyse(graph_nx: nx.DiGraph) -> dict:
    """Graph facts of a group graph made by :func:`pyg_hgconv.viz.to_networkx`."""
    directed = graph_nx.copy()
    directed.remove_edges_from(list(nx.selfloop_edges(directed)))
    undirected = directed.to_undirected()
    degrees = np.array([d for _, d in undirected.degree()])
    components = sorted((len(c) for c in nx.weakly_connected_components(directed)),
                        reverse=True)
    per_direction = Counter(attrs["direction"] for *_, attrs in directed.edges(data=True))

    # an edge u -> v of type t has its reverse v -> u of the opposite type 8 - t
    opposite = sum(1 for u, v, attrs in directed.edges(data=True)
                   if directed.has_edge(v, u)
                   and directed[v][u]["edge_type"] == 8 - attrs["edge_type"])
    # the type's displacement (dy, dx) points from the target's centroid to the source's
    agree = 0
    for u, v, attrs in directed.edges(data=True):
        dy, dx = OFFSETS[attrs["edge_type"]]
        (xu, yu), (xv, yv) = graph_nx.nodes[u]["pos"], graph_nx.nodes[v]["pos"]
        agree += (dx * (xu - xv) + dy * (yu - yv)) > 0
    num_edges = directed.number_of_edges()
    return {
        "groups": graph_nx.number_of_nodes(),
        "directed edges (no self loops)": num_edges,
        "self loops": nx.number_of_selfloops(graph_nx),
        "neighbour pairs": undirected.number_of_edges(),
        "mean degree": float(degrees.mean()) if degrees.size else 0.0,
        "max degree": int(degrees.max()) if degrees.size else 0,
        "connected components": len(components),
        "largest component": components[0] if components else 0,
        "strongly connected components": nx.number_strongly_connected_components(directed),
        "edges with the opposite reverse edge": opposite / max(num_edges, 1),
        "edges whose type points towards the neighbour": agree / max(num_edges, 1),
        "degrees": degrees,
        "per_direction": per_direction,
    }


def markdown_table(facts: dict) -> str:
    rows = ["| fact | value |", "|---|---|"]
    for key, value in facts.items():
        if isinstance(value, (dict, np.ndarray)):
            continue
        text = f"{value:.1%}" if isinstance(value, float) and value <= 1 and "edge" in key \
            else (f"{value:.2f}" if isinstance(value, float) else str(value))
        rows.append(f"| {key} | {text} |")
    return "\n".join(rows)


def analysis_figure(graph_nx: nx.DiGraph, facts: dict, image: torch.Tensor, path, dpi: int):
    height, width = graph_nx.graph["image_size"]
    fig, axes = viz.new_figure(mosaic="GGD;GGE;GGM", figsize=(13.0, 6.6))
    viz.draw_group_graph(axes["G"], graph_nx, image)
    axes["G"].set_title(f"group graph: {facts['groups']} groups, "
                        f"{facts['directed edges (no self loops)']} directed edges "
                        f"({height}x{width} px)", fontsize=9)

    hist = nx.degree_histogram(graph_nx.to_undirected())
    axes["D"].bar(range(len(hist)), hist, color="#4c72b0")
    axes["D"].set_xlabel("neighbours per group (degree)", fontsize=8)
    axes["D"].set_ylabel("groups", fontsize=8)

    colors = viz.direction_colors()
    types = [t for t in range(9) if t != SELF_LOOP]
    counts = [facts["per_direction"].get(viz.DIRECTION_NAMES[t], 0) for t in types]
    axes["E"].bar(range(len(types)), counts, color=[colors[t] for t in types])
    axes["E"].set_xticks(range(len(types)),
                         [viz.DIRECTION_ARROWS[t] for t in types], fontsize=10)
    axes["E"].set_ylabel("edges", fontsize=8)
    axes["E"].set_xlabel("direction of the neighbour (edge type)", fontsize=8)

    mass = np.array([m for _, m in graph_nx.nodes(data="mass")])
    axes["M"].hist(mass, bins=30, color="#55a868")
    axes["M"].set_xlabel("pixels per group (mass)", fontsize=8)
    axes["M"].set_ylabel("groups", fontsize=8)
    for key in "DEM":
        axes[key].tick_params(labelsize=7)
    return viz.save_figure(fig, path, dpi)


def main(argv: list[str] | None = None) -> dict:
    parser = _common.example_parser(NAME, __doc__)
    parser.add_argument("--size", type=_common.size_arg, default=(180, 240),
                        help="frame size H,W")
    parser.add_argument("--ratio", type=float, default=1 / 64,
                        help="groups per pixel (paper: 1/64)")
    parser.add_argument("--max-groups", type=int, default=80,
                        help="groups shown in the adjacency matrices")
    args = parser.parse_args(argv)
    out = _common.output_dir(args.out)

    image, _, source = _common.scene_frame(args.size, args.data_root)
    print(f"input: {source}, {args.size[0]}x{args.size[1]}")
    graph = H.ImageToGroupGraph(ratio=args.ratio, learnable=False).eval()(image[None])
    graph_nx = viz.to_networkx(graph, 0)
    print(graph_nx)
    facts = analyse(graph_nx)
    print(markdown_table(facts))
    print("edges per direction: " + ", ".join(
        f"{viz.DIRECTION_ARROWS[t]} {facts['per_direction'].get(viz.DIRECTION_NAMES[t], 0)}"
        for t in range(9) if t != SELF_LOOP))

    files = [
        analysis_figure(graph_nx, facts, image, out / f"{NAME}.png", args.dpi),
        viz.plot_group_panels(graph, out / f"{NAME}_panels.png", images=image[None],
                              dpi=args.dpi),
        viz.plot_adjacency_matrices(graph, out / f"{NAME}_adjacency.png",
                                    stages=viz.ADJACENCY_STAGES, max_groups=args.max_groups,
                                    dpi=args.dpi),
    ]
    for path in files:
        print(f"wrote {path}")
    return {"files": files, "graph": graph, "networkx": graph_nx, "facts": facts,
            "source": source}


if __name__ == "__main__":
    main()
