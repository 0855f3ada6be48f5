r"""Efficiency study: TVConv against native depthwise convolution, on this machine.

Five parts, measured in one run (CPU; all but ``training`` in eval mode under
``torch.no_grad()``):

* ``layer`` -- forward time of one layer per shape ``(channels, H, W, batch,
  stride)`` and memory format (``channels_last`` and contiguous NCHW), torch
  threads fixed (1 by default, the per-layer reference setting):

  ============== ==============================================================
  ``native``     ``nn.Conv2d(c, c, 3, stride, 1, groups=c)`` (the reference)
  ``cached``     :class:`~tvconv.TVConv` with its cached kernels (eval mode)
  ``uncached``   the TVConv cache dropped before every call: the weight-
                 generating block runs every time (then the fast apply path)
  ``unfold``     cached kernels applied the official way, ``F.unfold`` (copies
                 :math:`k^2` times the input) then multiply and sum
  ``official``   the official inference path: generate every call + ``unfold``
  ``*_compiled`` ``torch.compile`` of ``native`` and ``cached`` (selected shapes)
  ``*_bf16``     ``native`` and ``cached`` in bfloat16 (the same modules and
                 input converted; the fused kernel sums in float32 and rounds
                 once), reported against each other and against ``cached``
  ============== ==============================================================

  The implementations of one cell are timed in interleaved rounds (each round
  times every implementation back to back), so machine load hits them alike;
  a time is the median of all timed calls, a ratio is over ``native`` eager in
  the same format. Goal: ``cached`` at most :data:`LAYER_GOAL` x ``native``.
* ``network`` -- throughput (images/s) of the face MobileNetV2 at 96x96 (stride-1
  stem, 3 channels, as the paper) per batch size, thread count and memory
  format: x1.0 depthwise, x0.5 TVConv (cached), x0.5 depthwise and, at some batch
  sizes, x0.5 TVConv uncached; again interleaved. Goal: x0.5-TVConv at least 2x
  the throughput of x1.0-depthwise at batch 16 (the paper: 2.3x, its maximum
  over batch 1-16 and 1/2/4 threads on a Raspberry Pi 4B). Optionally the same
  two models under ``torch.compile`` (part ``network_compiled``).
* ``training`` -- one training step of one layer, forward + backward (input and
  parameter gradients, gradients cleared before every call as an optimiser
  step would), per shape, memory format and thread count, interleaved:

  ============== ==============================================================
  ``native``     depthwise ``nn.Conv2d`` (the reference)
  ``tvconv``     :class:`~tvconv.TVConv` in train mode: the kernels generated
                 by :math:`\mathcal{B}` (Eq. 4) and applied, both differentiated
  ``generator``  :math:`\mathbf{W} = \mathcal{B}(\mathbf{A})` alone and its
                 backward: the part no apply kernel can remove
  ``apply``      the per-pixel apply alone (:func:`tvconv.fused.per_pixel_conv`)
                 with fixed kernels that take a gradient, stored as the layer
                 generates them for this input
  ``dense``      a dense ``nn.Conv2d(c, c, 3)`` on the same input: what this
                 machine's convolution library reaches on a well-shaped conv
  ``*_bf16``     ``native`` and ``apply`` in bfloat16 (the same module, input,
                 kernels and output gradient converted; the fused backward sums
                 in float32 and rounds each gradient once), reported against
                 each other and against ``apply``
  ============== ==============================================================

  With the FLOPs of the generator's convolutions (forward, input and weight
  gradients: 3x the forward's, counted by :func:`tvconv.count_macs`) the part
  reports the generator's GFLOP/s beside the dense conv's. The goal: the layer
  at most :data:`TRAINING_GOAL` x native. The generator's own ratio is the
  floor any faster apply could reach.
* ``memory`` -- peak memory torch allocates during one forward of a
  ``[8, 3, 96, 96]`` batch (the paper's setting), and the resident size of
  the model (parameters + buffers, the cached kernels included).
* ``complexity`` -- MACs (cached inference, and with the kernels generated
  every call) and parameters (training time, and after caching) of
  MobileNetV2 and ShuffleNetV2 at the paper's widths.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common.cli import protocol_config, schedule_name
from benchmarks.common.plots import bar_plot, line_plot
from benchmarks.common.results import ResultStore, markdown_table, run_cells, write_report
from benchmarks.common.timing import (
    fixed_threads,
    interleaved_times,
    peak_memory_bytes,
)

NAME = "efficiency"
PROTOCOL_VERSION = 4
FORMATS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
LAYER_IMPLS = ("native", "cached", "uncached", "unfold", "official", "native_bf16",
               "cached_bf16")
TRAINING_IMPLS = ("native", "tvconv", "generator", "apply", "dense", "native_bf16",
                  "apply_bf16")
COMPILED_IMPLS = ("native_compiled", "cached_compiled")
#: the per-layer goal: cached TVConv at most this many times native depthwise
#: (every shape, eager, both formats, 1 and 2 threads)
LAYER_GOAL = 1.5
#: the network goal: x0.5-TVConv throughput over x1.0-depthwise at batch 16
#: (every format / thread cell)
NETWORK_GOAL = 2.0
#: the paper's figure: the best x0.5-TVConv over the best x1.0-depthwise throughput
PAPER_BEST_GOAL = 2.3
#: the same-width goal: x0.5-TVConv at most this many times slower than x0.5-depthwise
SAME_WIDTH_GOAL = 1.2
GOAL_BATCH = 16
#: the training goal: TVConv forward + backward at most this many times native depthwise
#: forward + backward at the irregular-conv benchmark's operator cell
TRAINING_GOAL = 47.0
#: that cell: (channels, H, W, batch, stride) of the largest operator map of ``make bench``
TRAINING_SHAPE = (128, 64, 80, 2, 1)
#: the per-layer reference shape: (channels, H, W, batch, stride)
REFERENCE_SHAPE = (48, 24, 24, 16, 1)
#: network models: key -> (width, conv, cached)
NETWORK_MODELS = {"dw_x1.0": (1.0, "depthwise", True), "tv_x0.5": (0.5, "tvconv", True),
                  "dw_x0.5": (0.5, "depthwise", True),
                  "tv_x0.5_uncached": (0.5, "tvconv", False)}
MIB = 2 ** 20
log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EfficiencySchedule:
    """What one schedule of the efficiency study measures.

    Args:
        layer_shapes: ``(channels, H, W, batch, stride)`` of the per-layer cells.
        layer_threads: thread counts of the per-layer cells.
        compile_shapes: the shapes that are also timed under ``torch.compile``.
        layer_rounds: interleaved rounds per layer cell.
        layer_round_s: target seconds per implementation and round (sets the repeats).
        network_batches, network_threads: the throughput grid.
        network_rounds, network_round_s: as for layers.
        uncached_batches: batch sizes at which the uncached x0.5 TVConv network is timed.
        compile_network: also time the x1.0-depthwise and x0.5-TVConv networks under
            ``torch.compile`` at batch 16, one thread, ``channels_last``.
        input_size: network input side (96 in the paper).
        memory_batch: batch of the peak-memory measurement (8 in the paper).
        mbv2_widths, shufflenet_widths: widths of the complexity table.
        training_shapes: ``(channels, H, W, batch, stride)`` of the training cells
            (timed on ``layer_threads`` threads, both formats, ``layer_rounds``
            rounds).
    """

    layer_shapes: tuple[tuple[int, int, int, int, int], ...]
    compile_shapes: tuple[tuple[int, int, int, int, int], ...]
    layer_threads: tuple[int, ...] = (1, 2)
    layer_rounds: int = 5
    layer_round_s: float = 0.1
    network_batches: tuple[int, ...] = (1, 2, 4, 8, 16)
    network_threads: tuple[int, ...] = (1, 2)
    network_rounds: int = 3
    network_round_s: float = 0.5
    uncached_batches: tuple[int, ...] = (1, 16)
    compile_network: bool = False
    input_size: int = 96
    memory_batch: int = 8
    mbv2_widths: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5, 1.0)
    shufflenet_widths: tuple[float, ...] = (0.5, 1.0, 1.5)
    training_shapes: tuple[tuple[int, int, int, int, int], ...] = (TRAINING_SHAPE,
                                                                   REFERENCE_SHAPE)


#: per-layer shapes: MobileNetV2 (x1.0 and x0.5) depthwise layers at 96x96, batch 16
MBV2_LAYER_SHAPES = (
    REFERENCE_SHAPE,
    (48, 24, 24, 1, 1),
    (32, 96, 96, 16, 1),
    (96, 96, 96, 16, 2),
    (144, 48, 48, 16, 1),
    (192, 24, 24, 16, 1),
    (384, 12, 12, 16, 1),
    (576, 12, 12, 16, 2),
    (960, 6, 6, 16, 1),
)

SCHEDULES = {
    "quick": EfficiencySchedule(
        layer_shapes=((8, 12, 12, 2, 1), (8, 12, 12, 2, 2)), compile_shapes=(),
        layer_threads=(1,), layer_rounds=1, layer_round_s=0.005, network_batches=(1, 2),
        network_threads=(1,),
        network_rounds=1, network_round_s=0.01, uncached_batches=(1,), input_size=32,
        memory_batch=2, mbv2_widths=(0.1,), shufflenet_widths=(0.5,),
        training_shapes=((8, 12, 12, 2, 1), (8, 12, 12, 2, 2))),
    "default": EfficiencySchedule(
        layer_shapes=MBV2_LAYER_SHAPES,
        compile_shapes=(REFERENCE_SHAPE, (144, 48, 48, 16, 1), (960, 6, 6, 16, 1))),
    "full": EfficiencySchedule(
        layer_shapes=MBV2_LAYER_SHAPES, compile_shapes=MBV2_LAYER_SHAPES,
        layer_threads=(1, 2), layer_rounds=9, layer_round_s=0.3, network_rounds=5,
        network_round_s=1.5, uncached_batches=(1, 2, 4, 8, 16), compile_network=True),
}


# ------------------------------------------------------------------------ timing
def unfold_translation_variant_conv(x: Tensor, weight: Tensor, stride: int) -> Tensor:
    """The official application of per-pixel kernels ``[C, k*k, H_out, W_out]``: ``F.unfold``
    (a copy of :math:`k^2` times the input) times the kernels, summed over the taps."""
    batch, channels = x.shape[:2]
    k = math.isqrt(weight.shape[1])
    patches = F.unfold(x, k, padding=(k - 1) // 2, stride=stride)
    return (patches.view(batch, channels, k * k, *weight.shape[-2:]) * weight).sum(2)


def _compiled(module: nn.Module) -> Callable:
    """``torch.compile(module)``; the caller resets dynamo first (see :func:`_fresh_dynamo`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.compile(module, dynamic=False)


def _fresh_dynamo() -> None:
    """Forget earlier compilations, so that every cell compiles its own modules and
    never runs into dynamo's recompilation limit (it would fall back to eager)."""
    torch._dynamo.reset()


def _shape_name(shape: tuple[int, ...]) -> str:
    c, h, w, b, s = shape
    return f"c{c} {h}x{w} b{b} s{s}"


@torch.no_grad()
def measure_layer(cell: dict, schedule: EfficiencySchedule, seed: int) -> dict[str, Any]:
    """Time every implementation of one layer cell (see the module docstring)."""
    from tvconv import TVConv

    channels, height, width, batch, stride = cell["shape"]
    fmt = FORMATS[cell["format"]]
    torch.manual_seed(seed)
    out_size = (math.ceil(height / stride), math.ceil(width / stride))
    native = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels, bias=False).eval()
    layer = TVConv(channels, 3, stride, size=out_size).eval()
    with torch.no_grad():  # non-constant affinity maps: a trained-looking, varying layout
        layer.affinity_maps.normal_()
    native = native.to(memory_format=fmt)
    x = torch.randn(batch, channels, height, width).contiguous(memory_format=fmt)
    native_bf16, layer_bf16 = copy.deepcopy(native).bfloat16(), copy.deepcopy(layer).bfloat16()
    x_bf16 = x.bfloat16()  # keeps the memory format

    def uncached() -> Tensor:
        layer.clear_cache()
        return layer(x)

    def official() -> Tensor:
        return unfold_translation_variant_conv(x, layer.generate()[0], stride)

    with fixed_threads(cell["threads"]):
        reference = layer(x)  # builds the cache
        kernels = layer.cache_weights()[0].contiguous()  # the official (C, k*k, H, W) layout
        fns = {"native": lambda: native(x), "cached": lambda: layer(x), "uncached": uncached,
               "unfold": lambda: unfold_translation_variant_conv(x, kernels, stride),
               "official": official}
        max_diff = max(float((uncached() - reference).abs().max()),
                       float((fns["unfold"]() - reference).abs().max()))
        layer(x)  # rebuild the cache dropped by uncached()
        fns["native_bf16"] = lambda: native_bf16(x_bf16)
        fns["cached_bf16"] = lambda: layer_bf16(x_bf16)
        # the bfloat16 layer's own rounding (its kernels are generated in bfloat16 too),
        # relative to the largest output
        bf16_rel_diff = float((layer_bf16(x_bf16).float() - reference).abs().max()
                              / reference.abs().max().clamp_min(1e-30))
        if cell["compile"]:
            _fresh_dynamo()
            native_c, layer_c = _compiled(native), _compiled(layer)
            max_diff = max(max_diff, float((layer_c(x) - reference).abs().max()))
            fns["native_compiled"] = lambda: native_c(x)
            fns["cached_compiled"] = lambda: layer_c(x)
        stats = interleaved_times(fns, schedule.layer_rounds, schedule.layer_round_s)
    record: dict[str, Any] = {"max_abs_diff": max_diff, "bf16_max_rel_diff": bf16_rel_diff}
    base = stats["native"]["ms"]
    for impl, s in stats.items():
        record[f"{impl}_ms"], record[f"{impl}_iqr_ms"] = s["ms"], s["iqr_ms"]
        record[f"{impl}_ratio"] = s["ms"] / base
    record["cached_bf16_vs_native_bf16"] = stats["cached_bf16"]["ms"] / stats["native_bf16"]["ms"]
    record["cached_bf16_vs_cached"] = stats["cached_bf16"]["ms"] / stats["cached"]["ms"]
    if cell["compile"]:
        record["cached_compiled_vs_native_compiled"] = (stats["cached_compiled"]["ms"]
                                                        / stats["native_compiled"]["ms"])
    record["meets_goal"] = record["cached_ratio"] <= LAYER_GOAL
    return record


# ------------------------------------------------------------------------ training
def _training_step(params: list[Tensor], run: Callable[[], Tensor],
                   grad: Tensor) -> Callable[[], None]:
    """One forward + backward of ``run`` against the fixed output gradient ``grad``;
    the gradients of ``params`` are cleared first (``set_to_none``, as an optimiser
    step's ``zero_grad`` does), so no call accumulates into the last one's."""
    def step() -> None:
        for p in params:
            p.grad = None
        run().backward(grad)
    return step


def generator_flops(layer: nn.Module, size: tuple[int, int]) -> float:
    """FLOPs of one forward + backward of ``layer``'s kernel generator at output
    ``size``: 2 FLOPs per MAC of its convolutions (:func:`tvconv.count_macs` with
    and without the generator), times 3 (forward, input gradient, weight gradient;
    the affinity maps are parameters, so the first conv's input gradient runs too)."""
    from tvconv import count_macs

    shape = (1, layer.channels, *size)
    macs = (count_macs(layer, shape, elementwise=False, include_generator=True)
            - count_macs(layer, shape, elementwise=False))
    return 3 * 2 * float(macs)


def generator_floor(record: dict[str, Any]) -> float:
    """The time the generator's forward + backward FLOPs take at the dense 3x3 conv's
    rate measured in the same cell, over native depthwise's step: what the generator
    costs at the machine's convolution speed, whatever the apply does."""
    floor_ms = record["generator_gflops"] * 1e3 / record["dense_gflop_per_s"]
    return floor_ms / record["native_ms"]


def measure_training(cell: dict, schedule: EfficiencySchedule, seed: int) -> dict[str, Any]:
    """Time one training step (forward + backward) of every implementation of
    :data:`TRAINING_IMPLS` at one cell (see the module docstring)."""
    from tvconv import TVConv, count_macs
    from tvconv.fused import backend_info, fused_applies, kernel_runs_channels_last, per_pixel_conv

    channels, height, width, batch, stride = cell["shape"]
    fmt = FORMATS[cell["format"]]
    torch.manual_seed(seed)
    out_size = (math.ceil(height / stride), math.ceil(width / stride))
    native = nn.Conv2d(channels, channels, 3, stride, 1, groups=channels,
                       bias=False).to(memory_format=fmt)
    dense = nn.Conv2d(channels, channels, 3, stride, 1, bias=False).to(memory_format=fmt)
    layer = TVConv(channels, 3, stride, size=out_size).train()
    with torch.no_grad():
        layer.affinity_maps.normal_()
    x = torch.randn(batch, channels, height, width).contiguous(
        memory_format=fmt).requires_grad_()
    grad = torch.randn(batch, channels, *out_size).contiguous(memory_format=fmt)
    # the kernels in the memory order the layer generates them in for this input
    inner = fused_applies(x) and kernel_runs_channels_last(x, stride)
    kernels = layer.generate(channels_innermost=inner)[0].detach().requires_grad_()
    kernel_grad = torch.randn_like(kernels)
    layer_params = list(layer.parameters())
    # bfloat16 copies in the same memory layouts (a dense tensor keeps its strides)
    native_bf16 = copy.deepcopy(native).bfloat16()
    x_bf16, kernels_bf16 = (t.detach().bfloat16().requires_grad_() for t in (x, kernels))
    grad_bf16 = grad.bfloat16()
    fns = {"native": _training_step([x, *native.parameters()], lambda: native(x), grad),
           "tvconv": _training_step([x, *layer_params], lambda: layer(x), grad),
           "generator": _training_step(
               layer_params, lambda: layer.generate(channels_innermost=inner)[0], kernel_grad),
           "apply": _training_step([x, kernels],
                                   lambda: per_pixel_conv(x, kernels, stride=stride), grad),
           "dense": _training_step([x, *dense.parameters()], lambda: dense(x), grad),
           "native_bf16": _training_step([x_bf16, *native_bf16.parameters()],
                                         lambda: native_bf16(x_bf16), grad_bf16),
           "apply_bf16": _training_step(
               [x_bf16, kernels_bf16],
               lambda: per_pixel_conv(x_bf16, kernels_bf16, stride=stride), grad_bf16)}
    with fixed_threads(cell["threads"]):
        stats = interleaved_times(fns, schedule.layer_rounds, schedule.layer_round_s)
    record: dict[str, Any] = {"backend": backend_info()["tvconv_backend"],
                              "kernel_layout": "channels innermost" if inner else "standard"}
    base = stats["native"]["ms"]
    for impl, st in stats.items():
        record[f"{impl}_ms"], record[f"{impl}_iqr_ms"] = st["ms"], st["iqr_ms"]
        record[f"{impl}_ratio"] = st["ms"] / base
    flops = generator_flops(layer, out_size)
    # forward, input and weight gradients of the dense conv: 3 x its forward's FLOPs
    dense_flops = 3 * 2 * count_macs(dense, tuple(x.shape), elementwise=False)
    record.update({
        "generator_gflops": flops / 1e9,
        "generator_gflop_per_s": flops / 1e6 / stats["generator"]["ms"],
        "dense_gflop_per_s": dense_flops / 1e6 / stats["dense"]["ms"],
        "generator_share": stats["generator"]["ms"] / stats["tvconv"]["ms"],
        "apply_bf16_vs_native_bf16": stats["apply_bf16"]["ms"] / stats["native_bf16"]["ms"],
        "apply_bf16_vs_apply": stats["apply_bf16"]["ms"] / stats["apply"]["ms"],
        "meets_goal": record["tvconv_ratio"] <= TRAINING_GOAL})
    return record


# ------------------------------------------------------------------------ networks
def build_network(key: str, input_size: int) -> nn.Module:
    """The eval-mode face MobileNetV2 of ``key`` (see :data:`NETWORK_MODELS`)."""
    from tvconv.models import mobilenet_v2

    width, conv, _ = NETWORK_MODELS[key]
    return mobilenet_v2(width, conv, input_size=input_size).eval()


def network_models(schedule: EfficiencySchedule, seed: int) -> dict[str, nn.Module]:
    """Every network of the study, built once (the uncached model copies the cached one)."""
    torch.manual_seed(seed)
    models = {key: build_network(key, schedule.input_size)
              for key, (_, _, cached) in NETWORK_MODELS.items() if cached}
    # a copy with the same weights: dropping its caches never touches the cached model's
    models["tv_x0.5_uncached"] = copy.deepcopy(models["tv_x0.5"])
    return models


@contextlib.contextmanager
def _no_cache_reuse(model: nn.Module) -> Iterator[Callable[[Tensor], Tensor]]:
    from tvconv import clear_caches

    def forward(x: Tensor) -> Tensor:
        clear_caches(model)
        return model(x)

    try:
        yield forward
    finally:
        clear_caches(model)


def _network_input(cell: dict, schedule: EfficiencySchedule) -> Tensor:
    """A random ``[batch, 3, S, S]`` image batch in the cell's memory format."""
    size = schedule.input_size
    return torch.randn(cell["batch"], 3, size, size).contiguous(
        memory_format=FORMATS[cell["format"]])


@torch.no_grad()
def measure_network(cell: dict, schedule: EfficiencySchedule,
                    models: dict[str, nn.Module]) -> dict[str, Any]:
    """Throughput of every network model at one (batch, threads, format) cell."""
    fmt = FORMATS[cell["format"]]
    x = _network_input(cell, schedule)
    keys = [k for k in NETWORK_MODELS
            if NETWORK_MODELS[k][2] or cell["batch"] in schedule.uncached_batches]
    with contextlib.ExitStack() as stack:
        fns = {}
        for key in keys:
            model = models[key].to(memory_format=fmt)
            if NETWORK_MODELS[key][2]:
                fns[key] = (lambda m: lambda: m(x))(model)
            else:
                fns[key] = (lambda f: lambda: f(x))(stack.enter_context(_no_cache_reuse(model)))
        with fixed_threads(cell["threads"]):
            for key in keys:  # build caches (and warm up) outside the timing
                fns[key]()
            stats = interleaved_times(fns, schedule.network_rounds, schedule.network_round_s)
    return _throughput_record(stats, cell["batch"])


def _throughput_record(stats: dict[str, dict[str, float]], batch: int) -> dict[str, Any]:
    """``<model>_ms``, ``<model>_iqr_ms``, ``<model>_fps`` per timed model and the
    ``speedup`` of x0.5-TVConv over x1.0-depthwise in images per second."""
    record: dict[str, Any] = {}
    for key, s in stats.items():
        record[f"{key}_ms"], record[f"{key}_iqr_ms"] = s["ms"], s["iqr_ms"]
        record[f"{key}_fps"] = 1e3 * batch / s["ms"]
    record["speedup"] = record["tv_x0.5_fps"] / record["dw_x1.0_fps"]
    return record


@torch.no_grad()
def measure_network_compiled(cell: dict, schedule: EfficiencySchedule,
                             models: dict[str, nn.Module]) -> dict[str, Any]:
    """Throughput of x1.0-depthwise and x0.5-TVConv (cached) under ``torch.compile``."""
    fmt = FORMATS[cell["format"]]
    x = _network_input(cell, schedule)
    fns = {}
    _fresh_dynamo()
    with fixed_threads(cell["threads"]):
        for key in ("dw_x1.0", "tv_x0.5"):
            compiled = _compiled(models[key].to(memory_format=fmt))
            compiled(x)  # compile outside the timing
            fns[key] = (lambda f: lambda: f(x))(compiled)
        stats = interleaved_times(fns, schedule.network_rounds, schedule.network_round_s)
    return _throughput_record(stats, cell["batch"])


@torch.no_grad()
def measure_memory(cell: dict, schedule: EfficiencySchedule,
                   models: dict[str, nn.Module]) -> dict[str, Any]:
    """Peak memory of one forward of a ``[memory_batch, 3, S, S]`` batch, resident size.

    ``resident_mib`` counts every parameter and buffer of the model as trained (the TVConv
    generators and the cached kernels); ``resident_stripped_mib`` what inference needs
    after :func:`tvconv.strip_generators` (the kernels, no generators).
    """
    from tvconv import strip_generators

    model = models[cell["model"]].to(memory_format=torch.contiguous_format)
    size = schedule.input_size
    x = torch.randn(schedule.memory_batch, 3, size, size)
    cached = NETWORK_MODELS[cell["model"]][2]
    with contextlib.ExitStack() as stack:
        forward = model if cached else stack.enter_context(_no_cache_reuse(model))
        forward(x)  # cached: the kernels exist before the measurement
        resident = _resident_bytes(model)
        stripped = _resident_bytes(strip_generators(model)) if cached else resident
        peak = peak_memory_bytes(lambda: forward(x))
    return {"peak_mib": peak / MIB, "resident_mib": resident / MIB,
            "resident_stripped_mib": stripped / MIB,
            "inference_total_mib": (peak + stripped) / MIB, "input_shape": list(x.shape)}


def _resident_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model`` (cached TVConv kernels included)."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def machine_load() -> dict[str, float]:
    """``{"load_1min": ...}``: the 1-minute load average of the machine right after a
    measurement (``os.getloadavg``; absent where the OS has none). On a 2-core machine a
    load above 2 means other processes competed for the cores while timing."""
    try:
        return {"load_1min": os.getloadavg()[0]}
    except (AttributeError, OSError):
        return {}


# ---------------------------------------------------------------------- complexity
def measure_complexity(cell: dict, schedule: EfficiencySchedule) -> dict[str, Any]:
    """MACs and parameters of one (arch, width, conv) face network."""
    from tvconv import count_macs, count_params
    from tvconv.models import mobilenet_v2, shufflenet_v2

    build = mobilenet_v2 if cell["arch"] == "mobilenet_v2" else shufflenet_v2
    model = build(cell["width"], cell["conv"], input_size=schedule.input_size)
    shape = (1, 3, schedule.input_size, schedule.input_size)
    macs = count_macs(model, shape)
    return {"macs_m": macs / 1e6,
            "macs_uncached_m": count_macs(model, shape, include_generator=True) / 1e6,
            "params_m": count_params(model) / 1e6,
            "params_cached_m": count_params(model, cached=True) / 1e6}


# --------------------------------------------------------------------------- cells
def make_cells(schedule: EfficiencySchedule) -> list[dict[str, Any]]:
    """Every cell of the study, cheap parts first."""
    cells: list[dict[str, Any]] = []
    for arch, widths in (("mobilenet_v2", schedule.mbv2_widths),
                         ("shufflenet_v2", schedule.shufflenet_widths)):
        for width in widths:
            for conv in ("depthwise", "tvconv"):
                cells.append({"part": "complexity", "name": f"{arch} x{width:g} {conv}",
                              "arch": arch, "width": width, "conv": conv})
    for key in NETWORK_MODELS:
        cells.append({"part": "memory", "name": key, "model": key})
    for threads in schedule.layer_threads:
        for shape in schedule.layer_shapes:
            for fmt in FORMATS:
                cells.append({"part": "layer", "name": f"{_shape_name(shape)} {fmt} t{threads}",
                              "shape": list(shape), "format": fmt, "threads": threads,
                              "compile": shape in schedule.compile_shapes})
    for threads in schedule.layer_threads:
        for shape in schedule.training_shapes:
            for fmt in FORMATS:
                cells.append({"part": "training",
                              "name": f"{_shape_name(shape)} {fmt} t{threads}",
                              "shape": list(shape), "format": fmt, "threads": threads})
    for threads in schedule.network_threads:
        for fmt in FORMATS:
            for batch in schedule.network_batches:
                cells.append({"part": "network", "name": f"b{batch} t{threads} {fmt}",
                              "batch": batch, "threads": threads, "format": fmt})
    if schedule.compile_network:
        cells.append({"part": "network_compiled", "name": f"b{GOAL_BATCH} t1 channels_last",
                      "batch": GOAL_BATCH, "threads": 1, "format": "channels_last"})
    return cells


# -------------------------------------------------------------------------- report
def _x(value: float) -> str:
    return f"{value:.2f}x"


def goal_summary(records: list[dict]) -> list[dict[str, Any]]:
    """The performance goals, each with its measured value and verdict."""
    rows: list[dict[str, Any]] = []
    layers = [r for r in records if r["part"] == "layer"]
    ref = list(REFERENCE_SHAPE)
    for fmt in FORMATS:
        in_fmt = [r for r in layers if r["format"] == fmt]
        for mode, field in (("eager", "cached_ratio"), ("torch.compile", "cached_compiled_ratio")):
            values = [r[field] for r in in_fmt if r.get(field) is not None]
            if not values:
                continue
            at_ref = next((r[field] for r in in_fmt if r["shape"] == ref and r.get(field)), None)
            threads = "/".join(str(t) for t in sorted({r["threads"] for r in in_fmt}))
            rows.append({"goal": f"cached TVConv <= {LAYER_GOAL:g}x native depthwise "
                                 f"({mode}, {fmt}, 1 layer, threads {threads})",
                         "measured": (f"worst {_x(max(values))} over {len(values)} shape/thread "
                                      f"cells, {sum(v <= LAYER_GOAL for v in values)} within"
                                      + (f"; {_x(at_ref)} at c48 24x24 b16" if at_ref else "")),
                         "holds": max(values) <= LAYER_GOAL})
    for r in layers:
        if r["shape"] == ref and r["format"] == "channels_last" and r.get("official_ratio"):
            rows.append({"goal": "official inference path (generate + unfold), c48 24x24 b16, "
                                 "channels_last (for reference, no goal)",
                         "measured": f"{r['official_ratio']:.0f}x native, "
                                     f"{r['official_ms'] / r['cached_ms']:.0f}x cached",
                         "holds": None})
    training = [r for r in records if r["part"] == "training"]
    for r in training:
        if r["shape"] != list(TRAINING_SHAPE):
            continue
        where = f"{_shape_name(TRAINING_SHAPE)}, {r['format']}, {r['threads']} thread(s)"
        rows.append({"goal": f"TVConv forward+backward <= {TRAINING_GOAL:g}x native depthwise "
                             f"({where})",
                     "measured": (f"{_x(r['tvconv_ratio'])}; the generator alone "
                                  f"{_x(r['generator_ratio'])} ({r['generator_share']:.0%} of "
                                  f"the step, {r['generator_gflop_per_s']:.0f} GFLOP/s against "
                                  f"{r['dense_gflop_per_s']:.0f} of a dense 3x3 conv; its FLOPs "
                                  f"at that conv's rate: {_x(generator_floor(r))}), the "
                                  f"apply {_x(r['apply_ratio'])}"),
                     "holds": r["tvconv_ratio"] <= TRAINING_GOAL})
    for part in ("network", "network_compiled"):
        at_goal = [r for r in records if r["part"] == part and r["batch"] == GOAL_BATCH]
        for r in at_goal:
            label = "eager" if part == "network" else "torch.compile"
            rows.append({"goal": f"MobileNetV2 x0.5-TVConv >= {NETWORK_GOAL:g}x x1.0-depthwise "
                                 f"throughput, batch {GOAL_BATCH} ({label}, {r['threads']} "
                                 f"thread(s), {r['format']})",
                         "measured": _x(r["speedup"]), "holds": r["speedup"] >= NETWORK_GOAL})
    networks = [r for r in records if r["part"] == "network"]
    for r in networks:
        if r["batch"] == GOAL_BATCH and r.get("dw_x0.5_fps"):
            slower = r["dw_x0.5_fps"] / r["tv_x0.5_fps"]
            rows.append({"goal": f"x0.5-TVConv within {SAME_WIDTH_GOAL:g}x of x0.5-depthwise, "
                                 f"batch {GOAL_BATCH} ({r['threads']} thread(s), {r['format']})",
                         "measured": f"{_x(slower)} slower", "holds": slower <= SAME_WIDTH_GOAL})
    if networks:
        best = {key: max(r.get(f"{key}_fps") or 0.0 for r in networks)
                for key in ("tv_x0.5", "dw_x1.0", "dw_x0.5")}
        # x0.5-depthwise does TVConv's work per pixel without reading per-pixel kernels:
        # its best over x1.0-depthwise's bounds what x0.5-TVConv can reach here
        bound = (f"; the bound on this machine, x0.5-depthwise's best: "
                 f"{_x(best['dw_x0.5'] / best['dw_x1.0'])} ({best['dw_x0.5']:.0f} img/s)"
                 if best["dw_x0.5"] else "")
        rows.append({"goal": f"paper-style: max throughput over batch/threads/format, "
                             f"x0.5-TVConv / x1.0-depthwise >= {PAPER_BEST_GOAL:g}x (the paper's)",
                     "measured": f"{_x(best['tv_x0.5'] / best['dw_x1.0'])} "
                                 f"({best['tv_x0.5']:.0f} vs {best['dw_x1.0']:.0f} img/s){bound}",
                     "holds": best["tv_x0.5"] / best["dw_x1.0"] >= PAPER_BEST_GOAL})
    return rows


def _layer_plot_rows(layers: list[dict]) -> list[dict]:
    rows = []
    for r in layers:
        for impl in ("cached", "cached_compiled", "unfold", "uncached", "official"):
            if r.get(f"{impl}_ratio") is not None:
                rows.append({"shape": _shape_name(tuple(r["shape"])), "impl": impl,
                             "ratio": r[f"{impl}_ratio"]})
        if r.get("cached_bf16_vs_native_bf16") is not None:  # both in bfloat16
            rows.append({"shape": _shape_name(tuple(r["shape"])),
                         "impl": "cached bf16 / native bf16",
                         "ratio": r["cached_bf16_vs_native_bf16"]})
    return rows


def report(records: list[dict], schedule: EfficiencySchedule, config: dict, env: dict,
           out_dir: Path) -> dict[str, str]:
    """Print and write the tables, plots and ``results.md`` of the efficiency study."""
    parts = {p: [r for r in records if r["part"] == p]
             for p in ("layer", "training", "network", "network_compiled", "memory",
                       "complexity")}
    for r in (*parts["layer"], *parts["training"]):
        r["shape_name"] = _shape_name(tuple(r["shape"]))
    x_fmt = "{:.2f}x".format
    tables = {
        "Performance goals": markdown_table(goal_summary(records), [
            ("goal", "goal"), ("measured", "measured"),
            ("holds", "holds", lambda v: "yes" if v else "no")]),
        "Per-layer forward time (ms; ratio to native depthwise, same format)": markdown_table(
            parts["layer"], [
                ("shape_name", "shape"), ("format", "format"), ("threads", "threads"),
                ("native_ms", "native", ".3f"), ("cached_ms", "cached", ".3f"),
                ("cached_ratio", "cached/native", x_fmt),
                ("native_compiled_ms", "native compiled", ".3f"),
                ("cached_compiled_ms", "cached compiled", ".3f"),
                ("cached_compiled_ratio", "cached compiled/native", x_fmt),
                ("cached_compiled_vs_native_compiled", "compiled/compiled", x_fmt),
                ("unfold_ms", "unfold", ".2f"), ("uncached_ms", "uncached", ".2f"),
                ("official_ms", "official", ".2f"), ("official_ratio", "official/native",
                                                     ".0f"),
                ("max_abs_diff", "max |diff|", ".1e"), ("load_1min", "load", ".1f")]),
        "Per-layer forward time in bfloat16 (ms; TVConv's fused kernel sums in float32 "
        "and rounds once)": markdown_table(parts["layer"], [
            ("shape_name", "shape"), ("format", "format"), ("threads", "threads"),
            ("native_bf16_ms", "native bf16", ".3f"), ("cached_bf16_ms", "cached bf16", ".3f"),
            ("cached_bf16_vs_native_bf16", "cached bf16/native bf16", x_fmt),
            ("native_bf16_ratio", "native bf16/native fp32", x_fmt),
            ("cached_bf16_vs_cached", "cached bf16/cached fp32", x_fmt),
            ("bf16_max_rel_diff", "max |diff| / max |out| vs fp32", ".1e")]),
        "One training step of one layer, forward + backward (ms; ratio to native "
        "depthwise, same format)": markdown_table(parts["training"], [
            ("shape_name", "shape"), ("format", "format"), ("threads", "threads"),
            ("native_ms", "native", ".3f"), ("tvconv_ms", "TVConv", ".2f"),
            ("tvconv_ratio", "TVConv/native", x_fmt), ("generator_ms", "generator", ".2f"),
            ("generator_ratio", "generator/native", x_fmt),
            ("generator_share", "generator share", ".0%"), ("apply_ms", "apply", ".3f"),
            ("apply_ratio", "apply/native", x_fmt), ("dense_ms", "dense 3x3", ".2f"),
            ("generator_gflops", "generator GFLOP", ".2f"),
            ("generator_gflop_per_s", "generator GFLOP/s", ".0f"),
            ("dense_gflop_per_s", "dense GFLOP/s", ".0f"), ("backend", "apply backend"),
            ("kernel_layout", "kernel layout"),
            ("load_1min", "load", ".1f")]),
        "One training step of the apply in bfloat16, forward + backward (ms)": markdown_table(
            parts["training"], [
                ("shape_name", "shape"), ("format", "format"), ("threads", "threads"),
                ("native_bf16_ms", "native bf16", ".3f"), ("apply_bf16_ms", "apply bf16", ".3f"),
                ("apply_bf16_vs_native_bf16", "apply bf16/native bf16", x_fmt),
                ("native_bf16_ratio", "native bf16/native fp32", x_fmt),
                ("apply_bf16_vs_apply", "apply bf16/apply fp32", x_fmt)]),
        "Network throughput (images/s; MobileNetV2, 96x96)": markdown_table(
            parts["network"], [
                ("batch", "batch"), ("threads", "threads"), ("format", "format"),
                ("dw_x1.0_fps", "x1.0 depthwise", ".1f"), ("tv_x0.5_fps", "x0.5 TVConv", ".1f"),
                ("dw_x0.5_fps", "x0.5 depthwise", ".1f"),
                ("tv_x0.5_uncached_fps", "x0.5 TVConv uncached", ".2f"),
                ("speedup", "x0.5 TVConv / x1.0 dw", x_fmt), ("load_1min", "load", ".1f")]),
    }
    if parts["network_compiled"]:
        tables["Network throughput under torch.compile (images/s)"] = markdown_table(
            parts["network_compiled"], [
                ("batch", "batch"), ("threads", "threads"), ("format", "format"),
                ("dw_x1.0_fps", "x1.0 depthwise", ".1f"), ("tv_x0.5_fps", "x0.5 TVConv", ".1f"),
                ("speedup", "x0.5 TVConv / x1.0 dw", x_fmt)])
    tables["Peak memory of one forward (MiB)"] = markdown_table(parts["memory"], [
        ("model", "model"), ("input_shape", "input", lambda s: "x".join(map(str, s))),
        ("peak_mib", "peak MiB", ".1f"), ("resident_mib", "model MiB (with generators)", ".1f"),
        ("resident_stripped_mib", "model MiB (inference, generators stripped)", ".1f"),
        ("inference_total_mib", "peak + inference model MiB", ".1f")])
    size = schedule.input_size
    tables[f"MACs and parameters ({size}x{size}, batch 1)"] = markdown_table(parts["complexity"], [
        ("arch", "arch"), ("width", "width", "g"), ("conv", "conv"),
        ("macs_m", "MACs (M)", ".2f"), ("macs_uncached_m", "MACs uncached (M)", ".1f"),
        ("params_m", "params train (M)", ".3f"), ("params_cached_m", "params cached (M)",
                                                   ".3f")])
    plots = {}
    if parts["layer"]:
        plots["Per-layer time relative to native depthwise"] = bar_plot(
            _layer_plot_rows([r for r in parts["layer"] if r["format"] == "channels_last"]),
            "shape", "ratio", out_dir / "efficiency_layers.png", group="impl", logy=True,
            title="Per-layer forward time / native depthwise (channels_last)",
            ylabel="time ratio (log)")
    for fmt in FORMATS:
        rows = [r for r in parts["network"] if r["format"] == fmt]
        if not rows:
            continue
        series = {f"{key} t{t}": [{"batch": r["batch"], "fps": r.get(f"{key}_fps")}
                                  for r in rows if r["threads"] == t]
                  for key in NETWORK_MODELS for t in schedule.network_threads}
        plots[f"Throughput ({fmt})"] = line_plot(
            series, "batch", "fps", out_dir / f"efficiency_throughput_{fmt}.png", logx=True,
            logy=True, title=f"MobileNetV2 throughput, {fmt}", ylabel="images/s")
    if parts["memory"]:
        plots["Peak memory"] = bar_plot(parts["memory"], "model", "peak_mib",
                                        out_dir / "efficiency_memory.png",
                                        title="Peak memory of one forward", ylabel="MiB")
    if parts["complexity"]:
        rows = [{"model": f"{r['arch'][:5]} x{r['width']:g} {r['conv'][:2]}", "kind": kind,
                 "params": r[field]}
                for r in parts["complexity"] for kind, field in
                (("training", "params_m"), ("cached", "params_cached_m"))]
        plots["Parameters"] = bar_plot(rows, "model", "params", out_dir /
                                       "efficiency_params.png", group="kind", logy=True,
                                       title="Parameters (M)", ylabel="M parameters")
    loads = [r["load_1min"] for r in records if r.get("load_1min") is not None]
    load_note = (f" The 1-minute load average of the machine during the timings was "
                 f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} logical cores "
                 f"(field load_1min): with a load above the core count, and especially with "
                 f"2 threads, other processes took CPU time from the timed code."
                 if loads else "")
    notes = (
        "Measured on this machine in one run (see Environment); every part but the training "
        "step in eval mode without autograd. "
        "Per-layer cells: median over interleaved rounds of all implementations, "
        f"{schedule.layer_rounds} rounds; network cells: {schedule.network_rounds} rounds. "
        "The machine is shared: absolute times vary with its load, the interleaved ratios "
        "much less. 'uncached' regenerates the kernels every call; 'official' also applies "
        "them with unfold. MACs follow the paper's counting (tvconv.count_macs)." + load_note)
    write_report(out_dir, "TVConv benchmark: efficiency", config, tables, environment=env,
                 plots=plots, notes=notes)
    return tables


def run(args: argparse.Namespace, env: dict, out_dir: Path) -> dict[str, str]:
    """Run (or resume) the efficiency study into ``out_dir``; return its Markdown tables."""
    schedule = SCHEDULES[schedule_name(args)]
    if str(args.device) != "cpu":
        log.warning("the efficiency study measures the CPU; --device %s is ignored",
                    args.device)
    config = protocol_config(args, study=NAME, protocol_version=PROTOCOL_VERSION,
                             **dataclasses.asdict(schedule))
    store = ResultStore(out_dir, config, ("part", "name"), environment=env, fresh=args.fresh)
    models: dict[str, nn.Module] = {}

    def measure(cell: dict) -> dict[str, Any]:
        if cell["part"] == "complexity":
            return measure_complexity(cell, schedule)
        if cell["part"] == "layer":
            return {**measure_layer(cell, schedule, args.seed), **machine_load()}
        if cell["part"] == "training":
            return {**measure_training(cell, schedule, args.seed), **machine_load()}
        if not models:
            models.update(network_models(schedule, args.seed))
        if cell["part"] == "memory":
            return measure_memory(cell, schedule, models)
        if cell["part"] == "network":
            return {**measure_network(cell, schedule, models), **machine_load()}
        return {**measure_network_compiled(cell, schedule, models), **machine_load()}

    progress = not args.no_progress
    records = run_cells(store, make_cells(schedule), measure, desc="efficiency",
                        progress=progress)
    return report(records, schedule, config, env, out_dir)
