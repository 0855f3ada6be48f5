r"""The FLOP counter: one forward pass with hooks that price every module call.

HG-Conv's graph differs per image, so its cost does too (paper, Sec. 5.1: "we
evaluate the FLOPs of the HG-Conv by the average over the validation
images"). :func:`count_flops` runs one forward pass with hooks that read the
actual group graphs; :func:`conv_flops` prices a single registry convolution
on a given graph or map. The rules are those of :mod:`pyg_hgconv.profile.rules`
(graph convs through their registry entry's ``flops``, the clustering by
step) and :mod:`pyg_hgconv.profile.modules` (leaf modules, and the types other
packages register, e.g. TVConv).

Components
----------
Every count belongs to one of :data:`COMPONENTS`: ``grid_conv`` (convs and
TVConv on maps), ``graph_conv`` (registry graph convs with everything inside
them, pseudo-coordinates), ``linear`` (``Linear`` layers, e.g. the 1x1 convs
of an HG stage on the nodes), ``clustering`` (everything in
:class:`~pyg_hgconv.ImageToGroupGraph`, pooling and unpooling) and
``elementwise`` (norms, activations, pooling layers). :attr:`FlopCount.modules`
breaks the total down by qualified module name (``"name[step]"`` for the
steps above) and :meth:`FlopCount.under` sums a subtree, e.g. ``"stage4"``.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from pyg_hgconv.data.group_graph import GroupGraph
from pyg_hgconv.nn.conv.registry import GRAPH, GraphConvStep, build_conv, get_conv, spec_of
from pyg_hgconv.nn.models.hg_conv_module import GroupGraphModule
from pyg_hgconv.nn.pool.adjacency import block_positions, runs_fused_kernel
from pyg_hgconv.nn.pool.fused_clustering import padded_positions, runs_without_grad_on
from pyg_hgconv.nn.pool.image_to_group_graph import ImageToGroupGraph, num_groups_for
from pyg_hgconv.nn.pool.tiling import TiledAssignment, tiled_assignment_of
from pyg_hgconv.profile.modules import is_linear, leaf_flops, module_rule
from pyg_hgconv.profile.rules import (
    GraphSize,
    TilingSize,
    assignment_pairs,
    clustering_flops,
    clustering_flops_ideal,
)
from pyg_hgconv.utils.kernels import reads_channels_last
from pyg_hgconv.utils.sparse import csr_rows

COMPONENTS = ("grid_conv", "graph_conv", "linear", "clustering", "elementwise")


def tiling_size(graph, num_candidates: int,
                tiled: TiledAssignment | None) -> TilingSize:
    """The :class:`~pyg_hgconv.profile.rules.TilingSize` of a group graph's
    tiled assignment ``tiled`` (:func:`~pyg_hgconv.nn.pool.tiling.tiled_assignment_of`;
    one-pixel tiles for a graph in coordinate form only, ``tiled=None``)."""
    if tiled is None:
        b, h, w = graph.num_images, *(int(v) for v in graph.image_size[0])
        return TilingSize(b * h * w, 1, num_candidates, 0)
    grid = tiled.grid
    return TilingSize(grid.num_tiles, grid.tile_pixels, int(tiled.candidates.size(1)),
                      grid.num_tiles * block_positions(grid))


def _meta(*shape: int) -> Tensor:
    return torch.empty(shape, device="meta")


# ------------------------------------------------------------------ conv_flops
def conv_flops(name: str, layer_or_channels: nn.Module | int | tuple[int, int], graph=None,
               size: tuple[int, int] | None = None, *, batch_size: int = 1,
               elementwise: bool = True, **conv_kwargs) -> int:
    """FLOPs of one call of the registry convolution ``name``.

    Args:
        name (str): registry name (``'hgconv' | 'gcn' | 'gmm' | 'spline' |
            'dynamic_edge'`` and any registered grid conv).
        layer_or_channels: the layer (or its :class:`GraphConvStep`), or its
            channels: ``C`` (in = out) or ``(C_in, C_out)``; then the layer is
            built by the registry's factory with ``conv_kwargs`` (e.g.
            ``kernel_size=4``, ``k=16``, ``bias=False``).
        graph: graph convs: the graph it runs on (``edge_index``,
            ``num_nodes``, ``batch`` for ``dynamic_edge``).
        size (pair of int): grid convs: the output map size ``(H, W)``
            (also passed to the factory as ``size=``).
        batch_size (int): grid convs: images in the batch.
        elementwise (bool): count per-element work (activations inside
            ``dynamic_edge``'s MLP), as :func:`count_flops`.

    Returns:
        int, by the conv's rule (:mod:`pyg_hgconv.profile.rules`).
    """
    spec = get_conv(name)
    if isinstance(layer_or_channels, GraphConvStep):
        layer_or_channels = layer_or_channels.layer
    if isinstance(layer_or_channels, nn.Module):
        if conv_kwargs:
            raise ValueError(f"{sorted(conv_kwargs)} cannot be applied to a built layer")
        layer, channels = layer_or_channels, None
    else:
        layer, channels = None, _channel_pair(layer_or_channels)

    if spec.kind == GRAPH:
        if graph is None:
            raise ValueError(f"graph conv {name!r} needs the 'graph' it runs on")
        if layer is None:
            layer = _build(spec, channels, conv_kwargs)
        elif not isinstance(layer, spec.layer_type):
            raise ValueError(f"the layer is a {type(layer).__name__}, not a {name!r} conv")
        weighted = getattr(graph, "edge_weight", None) is not None
        return int(spec.flops(layer, GraphSize.of(graph), None, elementwise=elementwise,
                              weighted=weighted))

    if size is None:
        raise ValueError(f"grid conv {name!r} needs its output 'size' (H, W)")
    h, w = size
    if layer is None:
        layer = _build(spec, channels, {"size": (h, w), **conv_kwargs})
    cin = getattr(layer, "in_channels", getattr(layer, "channels", None))
    cout = getattr(layer, "out_channels", getattr(layer, "channels", None))
    inp, out = _meta(batch_size, cin, h, w), _meta(batch_size, cout, h, w)
    if spec.flops is not None:
        value = spec.flops(layer, inp, out, elementwise=elementwise)
    else:
        value = leaf_flops(layer, inp, out, elementwise)
    if value < 0:
        raise ValueError(f"no FLOP rule for {type(layer).__name__}")
    return int(value)


def _build(spec, channels: tuple[int, int], kwargs: Mapping[str, Any]) -> nn.Module:
    try:
        return build_conv(spec.name, *channels, **kwargs)
    except TypeError as exc:
        raise ValueError(f"{sorted(kwargs)} are not FLOP-relevant options of {spec.name!r} "
                         f"(its factory rejects them: {exc})") from None


def _channel_pair(channels) -> tuple[int, int]:
    if isinstance(channels, int) and not isinstance(channels, bool):
        channels = (channels, channels)
    if (not isinstance(channels, (tuple, list)) or len(channels) != 2
            or not all(isinstance(c, int) and c >= 1 for c in channels)):
        raise TypeError("'layer_or_channels' must be a layer, a channel count or a pair "
                        f"(C_in, C_out) (got {channels!r})")
    return int(channels[0]), int(channels[1])


# ------------------------------------------------------------------ FlopCount
@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of a forward pass (see the module docstring for the rules).

    Attributes:
        total (int): FLOPs of the whole batch.
        num_images (int): images in the batch(es) counted.
        components (dict): FLOPs per component of :data:`COMPONENTS`.
        modules (dict): FLOPs per qualified module name (``"name[step]"`` for
            the steps of clustering and group-graph modules).
        image_totals (tuple of int): per-image totals, when counted image by
            image (``count_flops(..., per_image=True)``).
        uncounted (tuple of str): module types met without a rule (counted 0).
        ideal (dict): for the clustering steps whose tiled products also
            multiply zeros, what a perfectly sparse implementation would cost
            (:func:`~pyg_hgconv.profile.rules.clustering_flops_ideal`), by
            ``"name[step]"``; for reference only, not part of ``total``.
    """

    total: int
    num_images: int
    components: Mapping[str, int]
    modules: Mapping[str, int]
    image_totals: tuple[int, ...] = ()
    uncounted: tuple[str, ...] = ()
    ideal: Mapping[str, int] = dataclasses.field(default_factory=dict)

    @classmethod
    def zero(cls) -> FlopCount:
        """The neutral element of ``+``."""
        return cls(0, 0, dict.fromkeys(COMPONENTS, 0), {})

    @property
    def per_image(self) -> float:
        """Mean FLOPs per image (``total / num_images``)."""
        return self.total / self.num_images if self.num_images else 0.0

    @property
    def per_image_std(self) -> float:
        """Standard deviation of the per-image totals (0 if not counted per image)."""
        if len(self.image_totals) < 2:
            return 0.0
        mean = sum(self.image_totals) / len(self.image_totals)
        return math.sqrt(sum((v - mean) ** 2 for v in self.image_totals)
                         / (len(self.image_totals) - 1))

    def under(self, prefix: str) -> int:
        """FLOPs of the module ``prefix`` and everything inside it (``''``: all)."""
        if prefix == "":
            return self.total
        return sum(v for k, v in self.modules.items()
                   if k == prefix or k.startswith((prefix + ".", prefix + "[")))

    def __add__(self, other: FlopCount) -> FlopCount:
        if not isinstance(other, FlopCount):
            return NotImplemented
        modules: dict[str, int] = defaultdict(int, self.modules)
        for k, v in other.modules.items():
            modules[k] += v
        ideal: dict[str, int] = defaultdict(int, self.ideal)
        for k, v in other.ideal.items():
            ideal[k] += v
        return FlopCount(
            self.total + other.total, self.num_images + other.num_images,
            {c: self.components.get(c, 0) + other.components.get(c, 0) for c in COMPONENTS},
            dict(modules), self.image_totals + other.image_totals,
            tuple(sorted(set(self.uncounted) | set(other.uncounted))), dict(ideal))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``per_image`` included)."""
        out = dataclasses.asdict(self)
        out["components"] = dict(self.components)
        out["modules"] = dict(self.modules)
        out["image_totals"] = list(self.image_totals)
        out["uncounted"] = list(self.uncounted)
        out["ideal"] = dict(self.ideal)
        out["per_image"] = self.per_image
        out["per_image_std"] = self.per_image_std
        return out

    def table(self, scale: float = 1e9, unit: str = "GFLOPs") -> str:
        """Markdown table of the per-image FLOPs by component."""
        n = max(self.num_images, 1)
        lines = [f"| component | {unit} / image | share |", "|---|---:|---:|"]
        for c in COMPONENTS:
            v = self.components.get(c, 0)
            share = v / self.total if self.total else 0.0
            lines.append(f"| {c} | {v / n / scale:.4g} | {100 * share:.1f} % |")
        lines.append(f"| **total** | **{self.per_image / scale:.4g}** | 100 % |")
        return "\n".join(lines)


def _slot_edges(adjacency: Tensor) -> Tensor:
    """``[2, E]`` (source, target) of the sparse ``[N, 9 N]`` matrix of
    :meth:`~pyg_hgconv.HGConv.slot_adjacency`."""
    num_nodes = adjacency.size(0)
    crow, col = adjacency.crow_indices(), adjacency.col_indices()
    return torch.stack([col % num_nodes, csr_rows(crow, col.numel())])


# ------------------------------------------------------------------ the counter
class _Counter:
    """Forward hooks that price every module call of one model."""

    def __init__(self, model: nn.Module, elementwise: bool, include_generator: bool):
        self.elementwise = elementwise
        self.include_generator = include_generator
        self.flops: dict[str, int] = defaultdict(int)
        self.component: dict[str, str] = {}
        self.graphs: dict[int, Any] = {}
        self.pending: dict[int, tuple] = {}
        self.ideal: dict[str, int] = defaultdict(int)
        self.unknown: set[str] = set()
        self.handles: list = []

        atomic: list[str] = []
        clustering: list[str] = []
        for name, module in model.named_modules():
            if any(_inside(name, a) for a in atomic):
                continue
            key = name or type(module).__name__
            in_clustering = any(_inside(name, c) for c in clustering)
            spec = spec_of(module, GRAPH)
            rule = module_rule(module)
            if spec is not None:
                atomic.append(name)
                self._hook(module, self._graph_conv_hook(key, spec), with_kwargs=True)
            elif rule is not None:  # a registered type is priced as one unit
                atomic.append(name)
                self._hook(module, self._leaf_hook(key, "clustering" if in_clustering
                                                   else rule.component))
            elif isinstance(module, ImageToGroupGraph):
                clustering.append(name)
                self._hook(module, self._clustering_hook(key), with_kwargs=True)
            elif isinstance(module, GroupGraphModule):
                module_hook = self._group_module_hooks(key, module)
                self.handles.append(module.register_forward_pre_hook(module_hook[0],
                                                                     with_kwargs=True))
                self._hook(module, module_hook[1], with_kwargs=True)
            elif not any(True for _ in module.children()):
                self._hook(module, self._leaf_hook(key, "clustering" if in_clustering else None))

    def _hook(self, module: nn.Module, fn: Callable, with_kwargs: bool = False) -> None:
        self.handles.append(module.register_forward_hook(fn, with_kwargs=with_kwargs))

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()

    def add(self, key: str, component: str, value: int) -> None:
        self.flops[key] += int(value)
        self.component[key] = component

    # -- hooks
    def _leaf_hook(self, key: str, component: str | None):
        def hook(module, args, out):
            inp = args[0] if args and isinstance(args[0], Tensor) else out
            if not isinstance(out, Tensor):
                return
            value = leaf_flops(module, inp, out, self.elementwise, self.include_generator)
            if value < 0:
                if any(True for _ in module.parameters(recurse=False)) or any(
                        True for _ in module.buffers(recurse=False)):
                    self.unknown.add(type(module).__name__)
                return
            self.add(key, component or _leaf_component(module), value)
        return hook

    def _graph_conv_hook(self, key: str, spec):
        def hook(module, args, kwargs, out):
            bound = _bind(module, args, kwargs)
            x = bound["x"]
            if isinstance(x, (tuple, list)):
                x_src, x_dst = x[0], x[1] if x[1] is not None else x[0]
            else:
                x_src = x_dst = x
            edge_index = bound.get("edge_index")
            if edge_index is not None and edge_index.layout == torch.sparse_csr:
                # HGConv.slot_adjacency: entry (target, type * N + source)
                edge_index = _slot_edges(edge_index)
            batch = bound.get("batch")
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            size = GraphSize.of(edge_index=edge_index, num_nodes=x_src.size(0), batch=batch,
                                num_targets=x_dst.size(0))
            weighted = bound.get("edge_weight") is not None
            value = spec.flops(module, size, x_src.size(-1), elementwise=self.elementwise,
                               weighted=weighted)
            self.add(key, "graph_conv", value)
        return hook

    def _clustering_hook(self, key: str):
        def hook(module, args, kwargs, graph):
            bound = _bind(module, args, kwargs)
            x = bound["x"]
            self.graphs[id(module)] = graph
            b, c, h, w = x.shape
            if b == 0:
                return
            k = num_groups_for(h * w, module.num_groups, module.ratio)
            m = min(module.num_candidates, k)
            embed = module.embed
            d = module.embed_channels or c
            tiled = tiled_assignment_of(graph)
            tiling = tiling_size(graph, m, tiled)
            fused = tiled is not None and graph.num_nodes and runs_without_grad_on(x)
            steps = clustering_flops(
                b, h, w, c, d, k, module.num_iterations, graph.num_nodes,
                tiling, attention=bound.get("attention") is not None,
                embedding=embed is not None,
                embedding_bias=embed is not None and embed.bias is not None,
                importance_channels=d if module.importance_from == "embedding" else c)
            pairs = assignment_pairs(graph.assign_index, b, h, w)
            nnz = int(graph.assign_index.size(1))
            if fused:  # the fused clustering kernel (pyg_hgconv.nn.pool.fused_clustering)
                padded = dataclasses.replace(
                    tiling, tile_pixels=padded_positions(tiling.tile_pixels, x.dtype))
                steps["slic"] = clustering_flops(
                    b, h, w, c, d, k, module.num_iterations, graph.num_nodes, padded)["slic"]
                # the non-zeros only: the features' and the coordinates' sums, the averages
                steps["pooling"] = (nnz + graph.num_nodes) * (c + 2)
                if embed is not None and reads_channels_last(x):
                    # the fused embedding computes a channels-last pixel's outputs
                    # in whole vectors (pyg_hgconv.nn.pool.fused_embedding)
                    width = padded_positions(d, x.dtype)
                    steps["embedding"] = b * h * w * width * (c + (embed.bias is not None))
            if fused or (tiled is not None and graph.num_nodes and runs_fused_kernel(
                    tiled.weight, int((graph.ptr[1:] - graph.ptr[:-1]).max()))):
                steps["adjacency"] = pairs  # the fused kernels multiply non-zeros only
            for step, value in steps.items():
                if value:
                    self.add(f"{key}[{step}]", "clustering", value)
            ideal = clustering_flops_ideal(
                b, h, w, c, d, k, m, module.num_iterations, graph.num_nodes, nnz, pairs)
            for step, value in ideal.items():
                self.ideal[f"{key}[{step}]"] += value
        return hook

    def _group_module_hooks(self, key: str, module):
        def pre_hook(mod, args, kwargs):
            bound = _bind(mod, args, kwargs)
            given = bound.get("graph")
            needs_pseudo = "pseudo" in get_conv(mod.conv_name, GRAPH).inputs and (
                given is None or getattr(given, "pseudo", None) is None)
            self.pending[id(mod)] = (given, needs_pseudo, bound["x"])

        def hook(mod, args, kwargs, output):
            given, needs_pseudo, x = self.pending.pop(id(mod))
            graph = given if given is not None else self.graphs.get(id(mod.pool))
            if graph is None or graph.num_nodes == 0:
                return
            out = output[0] if isinstance(output, tuple) else output
            b, c_in, h, w = x.shape
            nnz = int(graph.assign_index.size(1))
            tiled = tiled_assignment_of(graph)
            entries = tiled.weight.numel() if tiled is not None else None
            c_out = out.size(1)
            if given is not None:
                self.add(f"{key}[pool]", "clustering",
                         (entries if tiled is not None else nnz) * c_in + graph.num_nodes * c_in)
                self.ideal[f"{key}[pool]"] += (nnz + graph.num_nodes) * c_in
            if needs_pseudo:
                self.add(f"{key}[pseudo]", "graph_conv", 2 * int(graph.edge_index.size(1)))
            self.add(f"{key}[unpool]", "clustering", entries * (c_out + 1) if tiled is not None
                     else (nnz + b * h * w) * c_out)
            self.ideal[f"{key}[unpool]"] += (nnz + b * h * w) * c_out
        return pre_hook, hook


def _inside(name: str, prefix: str) -> bool:
    return prefix == "" or name.startswith(prefix + ".")


def _leaf_component(module: nn.Module) -> str:
    if isinstance(module, nn.modules.conv._ConvNd):
        return "grid_conv"
    if is_linear(module):
        return "linear"
    return "elementwise"


_SIGNATURES: dict[type, inspect.Signature] = {}


def _bind(module: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    cls = type(module)
    if cls not in _SIGNATURES:
        _SIGNATURES[cls] = inspect.signature(cls.forward)
    bound = _SIGNATURES[cls].bind(module, *args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


def _num_images(inputs: tuple) -> int:
    """Images behind a forward call: the batch size of the first image-like
    tensor (``[B, C, H, W]``, any tensor of rank >= 3), else the number of
    graphs of the first PyG batch, else 1."""
    for value in inputs:
        if isinstance(value, Tensor) and value.dim() >= 3:
            return int(value.size(0))
    for value in inputs:
        if isinstance(value, GroupGraph):
            return value.num_images
        if hasattr(value, "num_graphs"):
            return int(value.num_graphs)
    return 1


def count_flops(model: nn.Module, inputs: Tensor | Sequence[Any], *,
                kwargs: Mapping[str, Any] | None = None, per_image: bool = False,
                elementwise: bool = True, include_generator: bool = False,
                progress: bool = False) -> FlopCount:
    """Count the FLOPs of one inference forward pass of ``model`` on ``inputs``.

    The model runs in eval mode under ``torch.no_grad()`` (HG clustering is
    then deterministic) and is put back in its previous mode. Hooks read the
    group graphs each image actually gets; the rules are in the module
    docstring.

    Args:
        model: any ``nn.Module``.
        inputs: the input batch (a tensor ``[B, ...]``) or a tuple of
            positional arguments.
        kwargs: keyword arguments of the forward call.
        per_image (bool): run the images of a tensor batch one by one and
            record their totals (``image_totals``; the clustering then sees
            every image alone, as at batch size 1).
        elementwise (bool): count norms, activations and pooling layers.
        include_generator (bool): add generating every TVConv's kernels.
        progress (bool): a progress bar over the images (``per_image``).

    Returns:
        :class:`FlopCount`; ``per_image`` is the mean per image. Sum counts
        with ``+`` to average over a data set.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module (got {type(model).__name__})")
    kwargs = dict(kwargs or {})
    if per_image:
        if not isinstance(inputs, Tensor) or inputs.dim() < 1:
            raise ValueError("per_image=True needs a batch tensor as 'inputs'")
        total = FlopCount.zero()
        for i in tqdm(range(inputs.size(0)), disable=not progress, desc="FLOPs", unit="img"):
            count = count_flops(model, inputs[i:i + 1], kwargs=kwargs,
                                elementwise=elementwise, include_generator=include_generator)
            total = total + dataclasses.replace(count, image_totals=(count.total,))
        return total
    args = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)
    counter = _Counter(model, elementwise, include_generator)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        counter.remove()
        model.train(was_training)
    if counter.unknown:
        warnings.warn(f"count_flops: no FLOP rule for {sorted(counter.unknown)}; counted as 0",
                      stacklevel=2)
    components = dict.fromkeys(COMPONENTS, 0)
    for key, value in counter.flops.items():
        components[counter.component[key]] += value
    return FlopCount(total=sum(components.values()), num_images=_num_images(args),
                     components=components, modules=dict(counter.flops),
                     uncounted=tuple(sorted(counter.unknown)), ideal=dict(counter.ideal))


def average_flops(model: nn.Module, batches: Iterable[Tensor], *, elementwise: bool = True,
                  include_generator: bool = False, progress: bool = True) -> FlopCount:
    """Count ``model`` on every image of ``batches`` (tensors ``[B, ...]``, e.g.
    the images of a validation loader), image by image; ``per_image`` of the
    result is the paper's average over the validation images and
    ``per_image_std`` its fluctuation."""
    total = FlopCount.zero()
    for batch in tqdm(batches, disable=not progress, desc="FLOPs", unit="batch"):
        total = total + count_flops(model, batch, per_image=True, elementwise=elementwise,
                                    include_generator=include_generator)
    return total


__all__ = ["COMPONENTS", "FlopCount", "average_flops", "conv_flops", "count_flops"]
