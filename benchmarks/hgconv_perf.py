"""Performance of the HG-Conv core: memory, time against the grid convs, clustering quality.

Four measurements, in one run, on this machine:

* ``memory``: peak memory that torch allocates during one
  :class:`~pyg_hgconv.ImageToGroupGraph` forward on a ``[2, 64, 256, 256]``
  feature map with 1024 groups (target: under 1 GiB), with and without
  autograd, plus the sparsity of the assignment (non-zeros per pixel against
  the candidate-set size).
* ``time``: forward time of :class:`~pyg_hgconv.HGConvModule` (clustering
  included) with C = 256 on a ``[2, 256, 64, 64]`` map at ratio 1/64 and
  L = 3, against three 3x3 ``Conv2d + BatchNorm2d + ReLU`` layers at full
  resolution (target: at most :data:`TIME_TARGET` of their time). Medians over
  interleaved rounds (HG module, grid stack and clustering timed back to back
  in every round), torch threads fixed by ``--threads``, eval mode, no
  autograd. The cell also reports how often the candidate restriction of the
  tiled SLIC keeps a pixel's spatially nearest centre, for uniformly drawn
  centres and for the default sampler on a structured image.
* ``quality``: how well the groups follow real images (CamVid ``val``
  frames, or the generated scenes without CamVid) with the default tiles and
  with every pixel choosing among its own 9 nearest centres: the error of
  pooling then unpooling the pixels, edges per group, entries of S per pixel.
* ``directions``: how the direction types follow the geometry on the same
  images, for every direction rule and edge threshold: the share of diagonal
  types (a grid has 50%), the angle between an edge's type and the offset of
  its centroids, non-self edges per group.

The OpenMP wait policy is the environment's (recorded with the results):
``OMP_WAIT_POLICY=PASSIVE`` wakes a sleeping thread in every parallel op,
which slows the many small ops of the clustering far more than the three
large convolutions.

``--quick`` shrinks the inputs for a smoke run (the targets only apply to the
default sizes).
"""
from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
from torch import nn

from benchmarks.common.cli import base_parser, protocol_config, schedule_name, setup_run
from benchmarks.common.results import ResultStore, markdown_table, run_cells, write_report
from benchmarks.common.timing import interleaved_times, peak_memory_bytes
from benchmarks.irregular_conv.features import image_source, load_images
from pyg_hgconv.nn.pool.adjacency import DIRECTION_RULES

PROTOCOL_VERSION = 4
MIB = 2**20

#: schedule -> sizes and repeats
SCHEDULES = {
    "quick": dict(memory_shape=(1, 16, 64, 64), memory_groups=64,
                  time_shape=(1, 32, 32, 32), rounds=2, quality_images=2,
                  quality_size=(48, 64)),
    "default": dict(memory_shape=(2, 64, 256, 256), memory_groups=1024,
                    time_shape=(2, 256, 64, 64), rounds=7, quality_images=20,
                    quality_size=(96, 128)),
    "full": dict(memory_shape=(2, 64, 256, 256), memory_groups=1024,
                 time_shape=(2, 256, 64, 64), rounds=15, quality_images=100,
                 quality_size=(96, 128)),
}
#: clustering variants of the quality part: ImageToGroupGraph arguments
TILINGS = {
    "tiles (default, 12 candidates)": {},
    "per pixel (1x1 tiles, 9 candidates)": {"tile_size": 1, "num_candidates": 9},
}
QUALITY_RATIOS = (1 / 64, 1 / 16)
#: edge thresholds of the direction part: the paper's 1e-7 and contact weights of
#: a quarter, half and one pixel
DIRECTION_THRESHOLDS = (1e-7, 0.25, 0.5, 1.0)
RATIO, NUM_LAYERS = 1 / 64, 3
MEMORY_TARGET_MIB = 1024
TIME_TARGET = 1 / 10


def grid_stack(channels: int, num_layers: int) -> nn.Module:
    """``num_layers`` x (3x3 Conv2d, BatchNorm2d, ReLU) at full resolution."""
    return nn.Sequential(*[
        nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                      nn.ReLU())
        for _ in range(num_layers)])


def measure_memory(cell: dict, seed: int) -> dict:
    from pyg_hgconv import ImageToGroupGraph

    torch.manual_seed(seed)
    shape = tuple(cell["shape"])
    x = torch.randn(shape)
    transform = ImageToGroupGraph(shape[1], num_groups=cell["num_groups"],
                                  embed_channels=16).eval()
    with torch.no_grad():
        graph = transform(x)  # warm-up, and the graph for the sparsity figures
        peak_eval = peak_memory_bytes(lambda: transform(x))
    x.requires_grad_()
    peak_grad = peak_memory_bytes(lambda: transform(x))
    per_pixel = torch.bincount(graph.assign_index[0], minlength=graph.importance.numel())
    return {
        "peak_mib_no_grad": peak_eval / MIB,
        "peak_mib_autograd": peak_grad / MIB,
        "input_mib": x.numel() * 4 / MIB,
        "groups": int(graph.num_nodes),
        "edges": int(graph.num_edges),
        "nnz_per_pixel_mean": float(per_pixel.float().mean()),
        "nnz_per_pixel_max": int(per_pixel.max()),
        "candidates": transform.num_candidates,
        "dense_s_mib": graph.importance.numel() * graph.num_nodes * 4 / MIB,
        "meets_target": peak_grad / MIB < MEMORY_TARGET_MIB,
    }


def candidate_coverage(shape: tuple[int, ...], num_centers: int, num_candidates: int,
                       seed: int, sampler: str = "random") -> float:
    """Share of pixels whose spatially nearest centre is among the candidates
    of their tile (:meth:`~pyg_hgconv.nn.pool.tiling.TileGrid.for_spacing`), for
    centres drawn by ``sampler``: ``'random'`` (uniform, without replacement)
    or the transform's default (``'topk_random'`` on the importance map of a
    structured image, which packs centres where the image varies)."""
    import math

    from pyg_hgconv.nn.pool.importance import importance_map
    from pyg_hgconv.nn.pool.sampling import sample_centers
    from pyg_hgconv.nn.pool.slic import nearest_centers
    from pyg_hgconv.nn.pool.tiling import TileGrid

    b, _, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    m = min(num_candidates, num_centers)
    grid = TileGrid.for_spacing(b, h, w, math.sqrt(h * w / num_centers), m)
    if sampler == "random":
        importance = torch.ones(b, h * w)
    else:  # a structured image: blobs on a gradient
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        image = torch.stack([torch.sin(xs / 3.0) * torch.cos(ys / 5.0), xs / w,
                             (ys > h // 2).float()]).expand(b, -1, -1, -1)
        image = image + 0.05 * torch.randn(b, 3, h, w, generator=generator)
        importance = importance_map(image).flatten(1)
    centers = sample_centers(importance, num_centers, sampler, generator=generator)
    center_yx = torch.stack([centers // w, centers % w], dim=-1).float()
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    pixel_yx = torch.stack([ys, xs], dim=-1).reshape(-1, 2).float()
    candidates = nearest_centers(center_yx, grid.centres(), m)  # [B, tiles, m]
    nearest = nearest_centers(center_yx, pixel_yx, 1).view(-1, 1)  # [B N, 1]
    pixel_candidates = grid.per_pixel(candidates.view(-1, m))  # [B N, m]
    return float((pixel_candidates == nearest).any(-1).float().mean())


def measure_quality(cell: dict, images: torch.Tensor) -> dict:
    """How well the groups follow real images: the parameter-free transform
    (no embedding, fixed scales) on ``images``; mean absolute error of
    pooling then unpooling the pixels (Eqs. 5-6), edges per group, entries
    of S per pixel."""
    from pyg_hgconv import ImageToGroupGraph, unpool

    transform = ImageToGroupGraph(ratio=cell["ratio"], learnable=False,
                                  **TILINGS[cell["tiling"]]).eval()
    with torch.no_grad():
        graph = transform(images)
        error = (unpool(graph.x, graph) - images).abs().mean()
    b, _, h, w = images.shape
    return {"reconstruction_l1": float(error), "groups_per_image": graph.num_nodes / b,
            "edges_per_group": graph.num_edges / graph.num_nodes,
            "nnz_per_pixel": graph.assign_index.size(1) / (b * h * w),
            "images": b, "size": [h, w]}


def measure_time(cell: dict, seed: int, rounds: int) -> dict:
    from pyg_hgconv import HGConvModule
    from pyg_hgconv.nn.pool.image_to_group_graph import num_groups_for

    torch.manual_seed(seed)
    shape = tuple(cell["shape"])
    channels = shape[1]
    x = torch.randn(shape)
    module = HGConvModule(channels, num_layers=NUM_LAYERS, ratio=RATIO).eval()
    grid = grid_stack(channels, NUM_LAYERS).eval()
    with torch.no_grad():
        # interleaved rounds, so that machine noise hits the three alike
        stats = interleaved_times({"hg": lambda: module(x), "grid": lambda: grid(x),
                                   "clustering": lambda: module.pool(x, as_batch=False)},
                                  rounds=rounds, round_s=0.3)
    k = num_groups_for(shape[2] * shape[3], None, RATIO)
    return {
        "hg_ms": stats["hg"]["ms"], "hg_iqr_ms": stats["hg"]["iqr_ms"],
        "clustering_ms": stats["clustering"]["ms"],
        "grid_ms": stats["grid"]["ms"], "grid_iqr_ms": stats["grid"]["iqr_ms"],
        "ratio": stats["hg"]["ms"] / stats["grid"]["ms"],
        "meets_target": stats["hg"]["ms"] / stats["grid"]["ms"] <= TIME_TARGET,
        "timed_calls": {name: v["calls"] for name, v in stats.items()},
        "nearest_centre_coverage": candidate_coverage(
            shape, k, module.pool.num_candidates, seed, "random"),
        "nearest_centre_coverage_sampler": candidate_coverage(
            shape, k, module.pool.num_candidates, seed, module.pool.sampler),
        "sampler": module.pool.sampler,
    }


def direction_statistics(graph) -> dict:
    """How the direction types of a batch of group graphs follow the geometry:
    the share of diagonal types among the non-self edges (a grid has 50%), the
    mean and 95th-percentile angle between an edge's type and the displacement
    of its centroids (nearest-of-8 never exceeds 22.5 degrees) and edges per group."""
    import math

    from pyg_hgconv import SELF_LOOP
    from pyg_hgconv.utils.directions import direction_vectors

    non_self = graph.edge_type != SELF_LOOP
    types = graph.edge_type[non_self]
    src, dst = graph.edge_index[:, non_self]
    delta = (graph.pos[src] - graph.pos[dst]).double()
    moved = delta.norm(dim=1) > 0
    vectors = direction_vectors(torch.float64)[types]
    cosine = (vectors * delta).sum(1)[moved] / delta[moved].norm(dim=1)
    angle = torch.rad2deg(torch.acos(cosine.clamp(-1.0, 1.0)))
    diagonal = (types % 2 == 0) & (types != SELF_LOOP)
    return {"diagonal_share": float(diagonal.double().mean()) if types.numel() else math.nan,
            "angle_error_mean": float(angle.mean()) if angle.numel() else math.nan,
            "angle_error_p95": float(angle.quantile(0.95)) if angle.numel() else math.nan,
            "edges_per_group": int(non_self.sum()) / graph.num_nodes,
            "groups_per_image": graph.num_nodes / graph.num_images}


def measure_directions(cell: dict, images: torch.Tensor) -> dict:
    """The direction statistics of the parameter-free transform on ``images``
    with one direction rule and edge threshold."""
    from pyg_hgconv import ImageToGroupGraph

    transform = ImageToGroupGraph(ratio=cell["ratio"], learnable=False,
                                  direction_rule=cell["rule"],
                                  edge_threshold=cell["threshold"]).eval()
    with torch.no_grad():
        graph = transform(images, as_batch=False)
    return {**direction_statistics(graph), "images": images.size(0),
            "size": list(images.shape[-2:])}


def build_parser():
    """The command line of ``python -m benchmarks.hgconv_perf`` (the common options only)."""
    return base_parser("benchmarks.hgconv_perf", __doc__.split("\n\n")[0],
                       "results/hgconv_perf", examples=["", "--quick --threads 1"])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = setup_run(args)
    sizes = SCHEDULES[schedule_name(args)]
    config = protocol_config(args, protocol_version=PROTOCOL_VERSION, ratio=RATIO,
                             num_layers=NUM_LAYERS, **sizes)
    store = ResultStore(args.out, config, ("part", "variant"), environment=env,
                        fresh=args.fresh)
    source = image_source(args.data_root)
    if source["fallback"]:
        print(f"NOTE: {source['note']}.", flush=True)

    cells = [
        {"part": "memory", "variant": "-", "shape": list(sizes["memory_shape"]),
         "num_groups": sizes["memory_groups"]},
        {"part": "time", "variant": "-", "shape": list(sizes["time_shape"])},
        *({"part": "quality", "variant": f"{tiling} @ {ratio:.4g}", "tiling": tiling,
           "ratio": ratio, "images": source["note"]}
          for ratio in QUALITY_RATIOS for tiling in TILINGS),
        *({"part": "directions", "variant": f"{rule} t={threshold:g} @ {ratio:.4g}",
           "rule": rule, "threshold": threshold, "ratio": ratio, "images": source["note"]}
          for ratio in QUALITY_RATIOS for threshold in DIRECTION_THRESHOLDS
          for rule in DIRECTION_RULES),
    ]
    images: list[torch.Tensor] = []

    def measure(cell: dict) -> dict:
        if cell["part"] == "memory":
            return measure_memory(cell, args.seed)
        if cell["part"] == "time":
            return measure_time(cell, args.seed, sizes["rounds"])
        if not images:
            images.append(load_images(source, sizes["quality_images"], sizes["quality_size"],
                                      args.seed))
        if cell["part"] == "directions":
            return measure_directions(cell, images[0])
        return measure_quality(cell, images[0])

    done = run_cells(store, cells, measure, desc="hgconv_perf", progress=not args.no_progress)
    memory = next(r for r in done if r["part"] == "memory")
    timing = next(r for r in done if r["part"] == "time")
    quality = [r for r in done if r["part"] == "quality"]
    directions = [dict(r, ratio_label=f"1/{round(1 / r['ratio'])}")
                  for r in done if r["part"] == "directions"]
    tables = {
        "Memory of ImageToGroupGraph": markdown_table([memory], [
            ("shape", "input", lambda s: "x".join(map(str, s))),
            ("groups", "groups"), ("edges", "edges"),
            ("peak_mib_no_grad", "peak MiB (no grad)", ".1f"),
            ("peak_mib_autograd", "peak MiB (autograd)", ".1f"),
            ("dense_s_mib", "a dense S would be (MiB)", ".0f"),
            ("nnz_per_pixel_mean", "nnz/pixel mean", ".2f"),
            ("nnz_per_pixel_max", "nnz/pixel max"), ("candidates", "candidates"),
            ("meets_target", f"< {MEMORY_TARGET_MIB} MiB")]),
        "HGConvModule vs three grid conv layers": markdown_table([timing], [
            ("shape", "input", lambda s: "x".join(map(str, s))),
            ("hg_ms", "HG module ms", ".1f"), ("clustering_ms", "of which clustering ms", ".1f"),
            ("grid_ms", "3x(Conv2d+BN+ReLU) ms", ".1f"), ("ratio", "HG / grid", ".3f"),
            ("meets_target", f"<= {TIME_TARGET:g}"),
            ("nearest_centre_coverage", "nearest centre among candidates (uniform centres)",
             ".2%"),
            ("nearest_centre_coverage_sampler", "... (the default sampler)", ".2%")]),
        "Clustering quality on real images (parameter-free transform)": markdown_table(
            quality, [
                ("tiling", "candidates"), ("ratio", "ratio", ".4g"),
                ("groups_per_image", "groups/img", ".1f"),
                ("reconstruction_l1", "pool -> unpool L1 error", ".4f"),
                ("edges_per_group", "edges/group", ".2f"),
                ("nnz_per_pixel", "nnz/pixel", ".2f")]),
        "Direction types on real images (parameter-free transform): per rule and edge "
        "threshold": markdown_table(directions, [
            ("ratio_label", "ratio"), ("threshold", "edge threshold", ".2g"),
            ("rule", "direction rule"), ("groups_per_image", "groups/img", ".1f"),
            ("edges_per_group", "non-self edges/group", ".2f"),
            ("diagonal_share", "diagonal share (grid: 50%)", ".1%"),
            ("angle_error_mean", "mean angle to the centroid offset (deg)", ".1f"),
            ("angle_error_p95", "95th percentile (deg)", ".1f")]),
    }
    plots = {}
    if directions:
        from benchmarks.common.plots import bar_plot

        at_threshold = [dict(r, setting=f"{r['rule']} @ {r['ratio_label']}")
                        for r in directions if r["threshold"] == DIRECTION_THRESHOLDS[0]]
        plots["Mean angle between an edge's type and its centroid offset, per rule"] = bar_plot(
            at_threshold, "setting", "angle_error_mean", args.out / "direction_angle_error.png",
            ylabel="degrees (nearest of 8 sectors: <= 22.5)",
            title="direction types vs centroid geometry")
        plots["Non-self edges per group, per edge threshold"] = bar_plot(
            [dict(r, threshold_label=f"{r['threshold']:g}") for r in directions
             if r["rule"] == DIRECTION_RULES[0]],
            "threshold_label", "edges_per_group", args.out / "edges_per_group.png",
            group="ratio_label", ylabel="non-self edges per group",
            title="edge threshold vs graph density")
    for title, table in tables.items():
        print(f"\n## {title}\n\n{table}")
    report = write_report(args.out, "HG-Conv core performance", config, tables, environment=env,
                          plots=plots)
    print(f"\nwrote {store.path} and {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
