"""Performance of the HG-Conv core: memory, time against the grid convs, clustering quality.

Three measurements, in one run, on this machine:

* ``memory``: peak memory that torch allocates during one
  :class:`~pyg_hgconv.ImageToGroupGraph` forward on a ``[2, 64, 256, 256]``
  feature map with 1024 groups (target: under 1 GiB), with and without
  autograd, plus the sparsity of the assignment (non-zeros per pixel against
  the candidate-set size).
* ``time``: forward time of :class:`~pyg_hgconv.HGConvModule` (clustering
  included) with C = 256 on a ``[2, 256, 64, 64]`` map at ratio 1/64 and
  L = 3, against three 3x3 ``Conv2d + BatchNorm2d + ReLU`` layers at full
  resolution (target: at most 1/5 of their time). Medians of repeated calls,
  torch threads fixed by ``--threads``, eval mode, no autograd. The cell
  also reports how often the candidate restriction of the tiled SLIC keeps a
  pixel's spatially nearest centre (uniformly sampled centres).
* ``quality``: how well the groups follow real images (CamVid ``val``
  frames, or the generated scenes without CamVid) with the default tiles and
  with every pixel choosing among its own 9 nearest centres: the error of
  pooling then unpooling the pixels, edges per group, entries of S per pixel.

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
from benchmarks.common.timing import median_time, peak_memory_bytes
from benchmarks.irregular_conv.features import image_source, load_images

PROTOCOL_VERSION = 3
MIB = 2**20

#: schedule -> sizes and repeats
SCHEDULES = {
    "quick": dict(memory_shape=(1, 16, 64, 64), memory_groups=64,
                  time_shape=(1, 32, 32, 32), repeats=3, quality_images=2,
                  quality_size=(48, 64)),
    "default": dict(memory_shape=(2, 64, 256, 256), memory_groups=1024,
                    time_shape=(2, 256, 64, 64), repeats=10, quality_images=20,
                    quality_size=(96, 128)),
    "full": dict(memory_shape=(2, 64, 256, 256), memory_groups=1024,
                 time_shape=(2, 256, 64, 64), repeats=30, quality_images=100,
                 quality_size=(96, 128)),
}
#: clustering variants of the quality part: ImageToGroupGraph arguments
TILINGS = {
    "tiles (default, 12 candidates)": {},
    "per pixel (1x1 tiles, 9 candidates)": {"tile_size": 1, "num_candidates": 9},
}
QUALITY_RATIOS = (1 / 64, 1 / 16)
RATIO, NUM_LAYERS = 1 / 64, 3
MEMORY_TARGET_MIB = 1024
TIME_TARGET = 1 / 5


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
                       seed: int) -> float:
    """Share of pixels whose spatially nearest centre is among the candidates
    of their tile (:meth:`~pyg_hgconv.nn.pool.tiling.TileGrid.for_spacing`), for
    centres drawn uniformly without replacement."""
    import math

    from pyg_hgconv.nn.pool.slic import nearest_centers
    from pyg_hgconv.nn.pool.tiling import TileGrid

    b, _, h, w = shape
    generator = torch.Generator().manual_seed(seed)
    m = min(num_candidates, num_centers)
    grid = TileGrid.for_spacing(b, h, w, math.sqrt(h * w / num_centers), m)
    centers = torch.rand(b, h * w, generator=generator).topk(num_centers, dim=1).indices
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


def measure_time(cell: dict, seed: int, repeats: int) -> dict:
    from pyg_hgconv import HGConvModule
    from pyg_hgconv.nn.pool.image_to_group_graph import num_groups_for

    torch.manual_seed(seed)
    shape = tuple(cell["shape"])
    channels = shape[1]
    x = torch.randn(shape)
    module = HGConvModule(channels, num_layers=NUM_LAYERS, ratio=RATIO).eval()
    grid = grid_stack(channels, NUM_LAYERS).eval()
    with torch.no_grad():
        # interleave the two so that machine noise hits both alike
        t_hg = median_time(lambda: module(x), repeats=repeats, warmup=2)
        t_grid = median_time(lambda: grid(x), repeats=repeats, warmup=2)
        t_pool = median_time(lambda: module.pool(x), repeats=repeats, warmup=1)
    return {
        "hg_ms": 1e3 * t_hg["median"],
        "hg_iqr_ms": 1e3 * t_hg["iqr"],
        "clustering_ms": 1e3 * t_pool["median"],
        "grid_ms": 1e3 * t_grid["median"],
        "grid_iqr_ms": 1e3 * t_grid["iqr"],
        "ratio": t_hg["median"] / t_grid["median"],
        "meets_target": t_hg["median"] / t_grid["median"] <= TIME_TARGET,
        "nearest_centre_coverage": candidate_coverage(
            shape, num_groups_for(shape[2] * shape[3], None, RATIO), module.pool.num_candidates,
            seed),
    }


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
    ]
    images: list[torch.Tensor] = []

    def measure(cell: dict) -> dict:
        if cell["part"] == "memory":
            return measure_memory(cell, args.seed)
        if cell["part"] == "time":
            return measure_time(cell, args.seed, sizes["repeats"])
        if not images:
            images.append(load_images(source, sizes["quality_images"], sizes["quality_size"],
                                      args.seed))
        return measure_quality(cell, images[0])

    done = run_cells(store, cells, measure, desc="hgconv_perf", progress=not args.no_progress)
    memory = next(r for r in done if r["part"] == "memory")
    timing = next(r for r in done if r["part"] == "time")
    quality = [r for r in done if r["part"] == "quality"]
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
            ("meets_target", "<= 1/5"),
            ("nearest_centre_coverage", "nearest centre among candidates", ".2%")]),
        "Clustering quality on real images (parameter-free transform)": markdown_table(
            quality, [
                ("tiling", "candidates"), ("ratio", "ratio", ".4g"),
                ("groups_per_image", "groups/img", ".1f"),
                ("reconstruction_l1", "pool -> unpool L1 error", ".4f"),
                ("edges_per_group", "edges/group", ".2f"),
                ("nnz_per_pixel", "nnz/pixel", ".2f")]),
    }
    for title, table in tables.items():
        print(f"\n## {title}\n\n{table}")
    report = write_report(args.out, "HG-Conv core performance", config, tables, environment=env)
    print(f"\nwrote {store.path} and {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
