"""HG-Conv as an ordinary PyG conv layer, on a real CamVid frame.

HG-Conv's graph convolution (paper, Eq. 3) sums a degree-normalised message
per direction type, each with its own weight matrix W_delta. On the pixel grid
(every pixel its own group, `grid_graph`) this is exactly a zero-padded 3x3
convolution (Eq. 2); on the group graph of `ImageToGroupGraph` the same kernel
runs on ~1/64 as many nodes: pool (Eq. 5) -> HGConv (Eq. 3) -> unpool (Eq. 6).

The example takes a Sobel edge detector as a 3x3 `nn.Conv2d`, copies it into
`HGConv.from_conv2d`, checks the grid equivalence numerically and applies the
same layer to the group graph. On groups, a direction without any neighbour
contributes nothing, exactly like zero padding at the image border, so large
groups with few neighbours (the sky) respond to their own brightness. It writes

* `hgconv_layer.png`: input | Conv2d | HGConv on the grid graph | HGConv on the
  group graph (edge magnitude), with the group outlines;
* `hgconv_layer_graph.png`: the group graph over the frame.

Run:  python examples/hgconv_layer.py [--size 180,240] [--out docs/figures]
"""
from __future__ import annotations

import time

import _common
import torch
from torch import nn

import pyg_hgconv as H
from pyg_hgconv import viz

NAME = "hgconv_layer"


def sobel_conv() -> nn.Conv2d:
    """A 3x3 conv RGB -> (d/dx, d/dy) of the grey value (Sobel kernels)."""
    conv = nn.Conv2d(3, 2, 3, padding=1, bias=False)
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
    with torch.no_grad():
        conv.weight[0] = sobel_x / 3  # grey = mean of R, G, B
        conv.weight[1] = sobel_x.t() / 3
    return conv


def magnitude(gradients: torch.Tensor) -> torch.Tensor:
    """``[1, 2, H, W]`` -> ``[H, W]`` gradient magnitude."""
    return gradients[0].norm(dim=0)


def main(argv: list[str] | None = None) -> dict:
    parser = _common.example_parser(NAME, __doc__)
    parser.add_argument("--size", type=_common.size_arg, default=(180, 240),
                        help="frame size H,W")
    parser.add_argument("--ratio", type=float, default=1 / 64,
                        help="groups per pixel of ImageToGroupGraph (paper: 1/64)")
    args = parser.parse_args(argv)
    out = _common.output_dir(args.out)
    torch.manual_seed(0)

    image, _, source = _common.scene_frame(args.size, args.data_root)
    x = image[None]  # [1, 3, H, W]
    height, width = args.size
    print(f"input: {source}, {height}x{width}")

    conv = sobel_conv()
    layer = H.HGConv.from_conv2d(conv)
    print(layer)

    # 1. the pixel grid: HGConv == Conv2d (Eq. 2)
    grid = H.grid_graph(height, width)
    nodes = x.permute(0, 2, 3, 1).reshape(-1, 3)  # row-major pixels
    with torch.no_grad():
        reference = conv(x)
        on_grid = layer(nodes, grid.edge_index, grid.edge_type, grid.edge_weight)
    on_grid = on_grid.view(1, height, width, 2).permute(0, 3, 1, 2)
    error = float((on_grid - reference).abs().max())
    print(f"grid graph: {grid.num_nodes} nodes, {grid.num_edges} edges; "
          f"max |HGConv - Conv2d| = {error:.2e}")

    # 2. the group graph: pool -> HGConv -> unpool (Eqs. 5, 3, 6)
    to_groups = H.ImageToGroupGraph(ratio=args.ratio, learnable=False).eval()
    start = time.perf_counter()
    graph = to_groups(x)
    with torch.no_grad():
        on_groups = H.unpool(layer(graph.x, graph.edge_index, graph.edge_type,
                                   graph.edge_weight), graph)
    seconds = time.perf_counter() - start
    print(f"group graph: {graph.num_nodes} nodes, {graph.num_edges} edges "
          f"({grid.num_edges / graph.num_edges:.1f}x fewer messages than the grid); "
          f"clustering + conv took {seconds:.2f} s")

    fig, axes = viz.new_figure(1, 4, figsize=(13.0, 3.0 * height / width + 0.9))
    viz.draw_background(axes[0, 0], (height, width), image)
    axes[0, 0].set_title("input", fontsize=9)
    panels = [(reference, "Conv2d (Sobel)"),
              (on_grid, f"HGConv on the grid graph\nmax |diff| = {error:.1e}"),
              (on_groups, f"HGConv on {graph.num_nodes} groups (unpooled)")]
    top = float(magnitude(reference).max()) or 1.0
    for ax, (result, title) in zip(axes[0, 1:], panels, strict=True):
        ax.imshow(magnitude(result).numpy(), cmap="magma", vmin=0.0, vmax=top,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(title, fontsize=9)
    viz.draw_clustering(axes[0, 3], graph, None, color=(0.3, 0.8, 1.0), alpha=0.5,
                        linewidth=0.4)
    files = [viz.save_figure(fig, out / f"{NAME}.png", dpi=args.dpi),
             viz.plot_group_graph(graph, out / f"{NAME}_graph.png", image=image, dpi=args.dpi)]
    for path in files:
        print(f"wrote {path}")
    return {"files": files, "grid_error": error, "graph": graph, "source": source}


if __name__ == "__main__":
    main()
