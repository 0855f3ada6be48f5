r"""Operator part: every convolution of the registry on the same real feature maps.

Cells
-----
For every feature-map size ``(H, W)`` of the schedule (maps of ``batch`` real
frames, :mod:`.features`):

* one cell per **grid conv** (``conv2d``, ``depthwise``, ``tvconv``) on the
  full ``[B, C, H, W]`` map, ``C -> C`` channels;
* for every downsampling ratio ``1/d``, one cell per **graph conv**
  (``hgconv``, ``gcn``, ``gmm``, ``spline``, ``dynamic_edge``): an
  :class:`~pyg_hgconv.HGConvModule` (one layer, ``C -> C``) with that conv in
  its slot clusters the map into group graphs (eval mode: the same seeded
  groups for every conv, so all five run on the very same graphs).

What is measured (all in one record per cell; times are medians of
``repeats`` calls after ``warmup`` calls, torch threads fixed by
``--threads``, channels-last maps; memory is the peak that torch allocates on
top of what exists when the call starts, :func:`~benchmarks.common.timing.peak_memory_bytes`):

==========================  ================================================================
field                       meaning
==========================  ================================================================
``fwd_ms``                  the conv alone, forward, eval mode, no autograd. Graph convs:
                            the layer on the prebuilt group graph (``x`` ``[N_grp, C]``,
                            pseudo-coordinates attached beforehand); grid convs: the layer
                            on the map (TVConv with its cached kernels)
``fwdbwd_ms``               the conv alone, forward + backward (input and weight
                            gradients), train mode (TVConv generates its kernels every call)
``fwd_peak_mib``,           peak extra memory of the two calls above
``fwdbwd_peak_mib``
``params``                  trainable parameters of the conv (TVConv: training-time size;
                            ``params_inference``: after caching)
``flops``, ``mflops``       FLOPs per image of the conv alone,
                            :func:`pyg_hgconv.profile.counter.conv_flops` (graph convs counted from
                            their edges and channels; rules in :mod:`pyg_hgconv.profile.counter`)
``groups``, ``edges``       mean nodes / edges (self loops included) of the group graph
                            per image; ``conv_edges``: the edges the conv actually
                            aggregates over (``dynamic_edge``: its k-NN graph)
``module_*``                graph convs: the whole HGConvModule (clustering, pooling,
                            conv, BN, ReLU, unpooling), fwd in eval, fwd+bwd in train mode
                            (random centre sampling, batch statistics); ``module_flops``
                            by :func:`pyg_hgconv.profile.counter.count_flops`, with its components
``clustering_*``            ``hgconv`` cells: :class:`~pyg_hgconv.ImageToGroupGraph` alone
                            (fwd; fwd+bwd of the pooled features and edge weights) -- the
                            clustering every graph conv of that size and ratio runs on
``module_vs_dense_fwd``     ``hgconv`` cells: the whole module's forward over the dense 3x3
                            conv's on the same map, timed side by side in interleaved
                            rounds with the clustering alone (``beside_module_fwd_ms``,
                            ``beside_dense_fwd_ms``, ``beside_clustering_fwd_ms``;
                            ``clustering_share_of_module_fwd``)
``status``, ``error``       ``'ok'``, or ``'error'`` with the reason (e.g. a baseline whose
                            compiled backend, torch-spline-conv / torch-cluster, is missing)
==========================  ================================================================

FLOPs and parameters are per image and independent of the machine; times
depend on it (and on its load).
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks.common.grid_convs import GRID_CONVS
from benchmarks.common.timing import interleaved_times, median_time, peak_memory_bytes
from pyg_hgconv.nn.conv.registry import GraphInputs, build_conv, conv_names, get_conv
from pyg_hgconv.nn.pool.image_to_group_graph import DIRECTION_RULE
from pyg_hgconv.profile.counter import conv_flops, count_flops
from pyg_hgconv.profile.rules import knn_edges

from .features import feature_map
from .schedules import IrregularSchedule, ratio_label

__all__ = [
    "BACKENDS",
    "GRAPH_CONVS",
    "GRID_CONVS",
    "backend_status",
    "measure_operator",
    "missing_backend",
    "operator_cells",
]

GRAPH_CONVS: tuple[str, ...] = tuple(conv_names("graph"))
#: compiled extension each registry conv needs beyond torch / torch-geometric
BACKENDS: dict[str, str] = {name: get_conv(name).backend for name in GRAPH_CONVS
                            if get_conv(name).backend is not None}
MIB = 2**20


def backend_status() -> dict[str, bool]:
    """Which optional compiled backends import here (part of the protocol:
    a conv whose backend appears is measured anew)."""
    return {module: importlib.util.find_spec(module) is not None
            for module in sorted(set(BACKENDS.values()))}


def missing_backend(conv: str) -> str | None:
    """The missing backend module of ``conv``, or ``None`` when it can run."""
    module = BACKENDS.get(conv)
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return module


def operator_cells(schedule: IrregularSchedule) -> list[dict[str, Any]]:
    """The operator cells of ``schedule``, size by size (grid convs first, then
    ratio by ratio the five graph convs)."""
    cells: list[dict[str, Any]] = []
    base = {"part": "operator", "channels": schedule.channels, "batch": schedule.batch,
            "protocol": None, "seed": None}
    for height, width in schedule.sizes:
        size = {"height": height, "width": width, "pixels": height * width}
        for conv in GRID_CONVS:
            cells.append({**base, "conv": conv, "cell": f"{height}x{width}", "kind": "grid",
                          **size, "ratio": None, "ratio_label": None})
        for d in schedule.ratio_denominators:
            for conv in GRAPH_CONVS:
                cells.append({**base, "conv": conv, "kind": "graph", **size,
                              "cell": f"{height}x{width} r={ratio_label(d)}",
                              "ratio": 1 / d, "ratio_label": ratio_label(d)})
    return cells


# ------------------------------------------------------------------ measurement
def _timed(prefix: str, module: nn.Module, forward: Callable[[], Any],
           forward_backward: Callable[[], Any], schedule: IrregularSchedule,
           device: torch.device) -> dict[str, float]:
    """Median times and peak memory of ``forward`` (eval, no autograd) and
    ``forward_backward`` (train mode) of ``module`` on ``device``."""
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad():
            fwd = median_time(forward, repeats=schedule.repeats, warmup=schedule.warmup,
                              device=device)
            fwd_peak = peak_memory_bytes(forward, device=device)
        module.train()
        fwdbwd = median_time(forward_backward, repeats=schedule.repeats, warmup=schedule.warmup,
                             device=device)
        fwdbwd_peak = peak_memory_bytes(forward_backward, device=device)
    finally:
        module.train(was_training)
    return {f"{prefix}fwd_ms": 1e3 * fwd["median"], f"{prefix}fwd_iqr_ms": 1e3 * fwd["iqr"],
            f"{prefix}fwdbwd_ms": 1e3 * fwdbwd["median"],
            f"{prefix}fwdbwd_iqr_ms": 1e3 * fwdbwd["iqr"],
            f"{prefix}fwd_peak_mib": fwd_peak / MIB, f"{prefix}fwdbwd_peak_mib": fwdbwd_peak / MIB}


def _backward_step(module: nn.Module, inputs: tuple[Tensor, ...], run: Callable[[], Tensor],
                   grad: Tensor | None = None) -> Callable[[], None]:
    """A forward + backward call: clears the gradients of ``module`` and
    ``inputs``, runs ``run()`` and back-propagates ``grad`` (or the sum)."""
    def step() -> None:
        for p in module.parameters():
            p.grad = None
        for t in inputs:
            t.grad = None
        out = run()
        if grad is not None:
            out.backward(grad)
        else:
            out.sum().backward()
    return step


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _check_finite(name: str, out: Tensor) -> None:
    if not torch.isfinite(out).all():
        raise FloatingPointError(f"{name} produced non-finite values")


def grid_layer(name: str, x: Tensor, seed: int) -> nn.Module:
    """The registry's grid conv ``name`` (C -> C) for the map ``x``, initialised
    from ``seed``, channels-last, in eval mode."""
    channels, size = x.size(1), (x.size(2), x.size(3))
    torch.manual_seed(seed)
    return build_conv(name, channels, channels, size=size).to(
        x.device, memory_format=torch.channels_last).eval()


def measure_grid(cell: dict[str, Any], x: Tensor, schedule: IrregularSchedule,
                 seed: int) -> dict[str, Any]:
    """A grid conv (``conv2d`` | ``depthwise`` | ``tvconv``) on the map ``x``."""
    from tvconv import count_params

    name = cell["conv"]
    size = (cell["height"], cell["width"])
    layer = grid_layer(name, x, seed)
    with torch.no_grad():
        _check_finite(name, layer(x))  # also builds TVConv's kernel cache
    x_grad = x.detach().clone().requires_grad_()
    grad = torch.randn_like(x)
    record: dict[str, Any] = _timed(
        "", layer, lambda: layer(x),
        _backward_step(layer, (x_grad,), lambda: layer(x_grad), grad), schedule, x.device)
    batch = x.size(0)
    flops = conv_flops(name, layer, size=size, batch_size=batch) / batch
    record.update({"params": _params(layer), "flops": flops, "mflops": flops / 1e6,
                   "layer": repr(layer), "settings": get_conv(name).describe(layer),
                   "status": "ok"})
    if name == "tvconv":
        generated = count_flops(layer, x, include_generator=True).per_image
        record.update({"params_inference": count_params(layer, cached=True),
                       "mflops_with_generator": generated / 1e6})
    return record


def describe_graph_conv(conv: str, layer: nn.Module | None = None) -> str:
    """The hyper-parameters that set a graph conv's size, from the built
    ``layer`` (the registry entry's ``settings``), or the entry's description
    when the layer could not be built."""
    spec = get_conv(conv)
    return spec.describe(layer) if layer is not None else spec.description


def _graph_stats(conv: str, graph, step: nn.Module) -> dict[str, Any]:
    num_graphs = max(graph.num_images, 1)
    edges = int(graph.edge_index.size(1))
    if conv == "dynamic_edge":
        nodes = torch.bincount(graph.batch, minlength=num_graphs).tolist()
        conv_edges = knn_edges(nodes, step.layer.k)
    else:
        conv_edges = edges
    return {"groups": graph.num_nodes / num_graphs, "edges": edges / num_graphs,
            "conv_edges": conv_edges / num_graphs,
            "mean_degree": edges / max(graph.num_nodes, 1)}


def measure_graph(cell: dict[str, Any], x: Tensor, schedule: IrregularSchedule, seed: int,
                  edge_threshold: float, direction_rule: str = DIRECTION_RULE,
                  conv_kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """A graph conv in the slot of an :class:`~pyg_hgconv.HGConvModule` on ``x``."""
    from pyg_hgconv import HGConvModule

    name, channels, batch = cell["conv"], cell["channels"], x.size(0)
    torch.manual_seed(seed)
    module = HGConvModule(channels, num_layers=1, ratio=cell["ratio"], conv=name,
                          conv_kwargs=conv_kwargs, edge_threshold=edge_threshold,
                          direction_rule=direction_rule, seed=seed).to(x.device)
    step = module.convs[0]
    module.eval()
    with torch.no_grad():
        graph = module.pool(x, as_batch=False)  # the eval-mode groups: the same for every conv
        graph = GraphInputs(graph).prepare(name)  # derived inputs built once, as in the module
        z = graph.x.detach().contiguous()
        out = step(z, graph)
        _check_finite(name, out)
    record: dict[str, Any] = _graph_stats(name, graph, step)

    # the conv alone, on the prebuilt graph
    z_grad = z.clone().requires_grad_()
    record.update(_timed(
        "", step, lambda: step(z, graph),
        _backward_step(step, (z_grad,), lambda: step(z_grad, graph), torch.randn_like(out)),
        schedule, x.device))
    flops = conv_flops(name, step, graph) / batch
    record.update({"params": _params(step), "flops": flops, "mflops": flops / 1e6,
                   "layer": repr(step.layer), "settings": describe_graph_conv(name, step.layer)})

    # the whole module: clustering + pooling + conv + BN + ReLU + unpooling
    x_grad = x.detach().clone().requires_grad_()
    record.update(_timed(
        "module_", module, lambda: module(x),
        _backward_step(module, (x_grad,), lambda: module(x_grad), torch.randn_like(x)),
        schedule, x.device))
    module_count = count_flops(module, x)
    record.update({
        "module_params": _params(module),
        "module_flops": module_count.per_image, "module_mflops": module_count.per_image / 1e6,
        "module_flops_components": {k: v / batch for k, v in module_count.components.items()},
    })

    if name == "hgconv":  # HG-Conv's own clustering, the same for every graph conv
        record.update(measure_clustering(module.pool, x, x_grad, schedule))
        record.update(module_beside_dense(module, x, schedule, seed))
    record["status"] = "ok"
    return record


def module_beside_dense(module: nn.Module, x: Tensor, schedule: IrregularSchedule,
                        seed: int) -> dict[str, Any]:
    """The whole module's forward, its clustering's (as the module runs it) and the
    dense 3x3 conv's (``conv2d``, C -> C) on the same map, eval mode, no autograd,
    timed in ``schedule.repeats`` interleaved rounds
    (:func:`~benchmarks.common.timing.interleaved_times`): their ratios measured side
    by side, whatever the machine's load does between cells."""
    dense = grid_layer("conv2d", x, seed)
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            stats = interleaved_times({"module": lambda: module(x), "dense": lambda: dense(x),
                                       "clustering": lambda: module.pool(x, as_batch=False)},
                                      rounds=max(1, schedule.repeats),
                                      round_s=0.2 if schedule.repeats > 1 else 0.02)
    finally:
        module.train(was_training)
    return {"beside_module_fwd_ms": stats["module"]["ms"],
            "beside_dense_fwd_ms": stats["dense"]["ms"],
            "beside_clustering_fwd_ms": stats["clustering"]["ms"],
            "module_vs_dense_fwd": stats["module"]["ms"] / stats["dense"]["ms"],
            "clustering_share_of_module_fwd": stats["clustering"]["ms"] / stats["module"]["ms"],
            "beside_calls": {name: v["calls"] for name, v in stats.items()}}


def measure_clustering(pool: nn.Module, x: Tensor, x_grad: Tensor,
                       schedule: IrregularSchedule) -> dict[str, Any]:
    """:class:`~pyg_hgconv.ImageToGroupGraph` alone: fwd; fwd+bwd of the pooled
    features and edge weights (``x_grad`` is ``x`` with ``requires_grad``)."""
    def cluster_backward() -> Tensor:
        g = pool(x_grad)
        return g.x.sum() + g.edge_weight.sum()

    record = _timed("clustering_", pool, lambda: pool(x),
                    _backward_step(pool, (x_grad,), cluster_backward), schedule, x.device)
    count = count_flops(pool, x)
    steps = {k.split("[")[-1].rstrip("]"): v / x.size(0) for k, v in count.modules.items()}
    ideal = {k.split("[")[-1].rstrip("]"): v / x.size(0) for k, v in count.ideal.items()}
    sparse_total = sum(ideal.get(k, v) for k, v in steps.items())
    record.update({
        "clustering_params": _params(pool),
        "clustering_flops": count.per_image,
        "clustering_mflops": count.per_image / 1e6,
        "clustering_flops_steps": steps,
        # what a perfectly sparse implementation would cost (for reference, labelled)
        "clustering_ideal_flops_steps": ideal,
        "clustering_ideal_mflops": sparse_total / 1e6,
    })
    return record


def measure_operator(cell: dict[str, Any], source: dict[str, Any],
                     schedule: IrregularSchedule, args) -> dict[str, Any]:
    """Measure one operator cell (see the module docstring); a conv whose
    compiled backend is missing gives ``{"status": "error", "error": ...}``."""
    missing = missing_backend(cell["conv"])
    if missing is not None:
        return {"status": "error", "settings": describe_graph_conv(cell["conv"]),
                "error": f"backend {missing!r} is not installed: {cell['conv']!r} cannot run "
                         f"(install {missing.replace('_', '-')} and re-run; the cell is "
                         "then measured)"}
    seed = int(args.seed)
    x = feature_map(source, cell["height"], cell["width"], cell["channels"], cell["batch"],
                    seed).to(args.device)
    load = machine_load()
    try:
        if cell["kind"] == "grid":
            record = measure_grid(cell, x, schedule, seed)
        else:
            kwargs = {"impl": args.spline_impl} if cell["conv"] == "spline" else None
            record = measure_graph(cell, x, schedule, seed, args.edge_threshold,
                                   args.direction_rule, kwargs)
    except ImportError as exc:  # a backend that is present but broken
        settings = describe_graph_conv(cell["conv"]) if cell["kind"] == "graph" else None
        return {"status": "error", "settings": settings, "error": f"{type(exc).__name__}: {exc}"}
    return {**record, "load_1min": load}


def machine_load() -> float | None:
    """The 1-minute load average when the cell starts (timings on a shared
    machine are only as good as its load; ``None`` where the OS has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
