r"""TVConv: translation-variant depthwise convolution (Chen et al., CVPR 2022)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ._checks import (
    check_choice,
    check_image_batch,
    check_int,
    check_odd_kernel_size,
    check_pair,
)
from .apply import (
    conv_output_size,
    from_tap_major,
    tap_planes,
    to_tap_major,
    translation_variant_conv_cached,
)
from .fused import fused_applies, kernel_runs_channels_last, per_pixel_conv
from .weight_generator import PADDING_MODES, WeightGenerator, resample_maps


class TVConv(nn.Module):
    r"""The translation-variant convolution from the `"TVConv: Efficient
    Translation Variant Convolution for Layout-aware Visual Processing"
    <https://arxiv.org/abs/2203.10489>`_ paper.

    A depthwise convolution whose kernel differs per output pixel:

    .. math::
        \mathbf{O}_{i,j} = \mathbf{W}_{i,j} \otimes \mathbf{P}_{i,j} \quad (2),
        \qquad \mathbf{W} = \mathcal{B}(\mathbf{A}) \quad (4),

    where :math:`\mathbf{A} \in \mathbb{R}^{c_A \times h \times w}` are learned
    affinity maps (initialised to 1, Sec. 4.1) and :math:`\mathcal{B}` is the
    weight-generating block (:class:`~tvconv.weight_generator.WeightGenerator`):
    ``hidden_layers + 1`` blocks ``[3x3 conv -> LayerNorm(C, h, w) -> ReLU]``
    then a 3x3 conv to :math:`k^2 c` channels. The default ``hidden_layers=3``
    builds **4 hidden blocks**, like the official ``TVConv_inter_layers=3``.

    **Weight layout.** The generated kernels have layout ``(c, k*k, h, w)``
    (output channel :math:`c \cdot k^2 + t` of :math:`\mathcal{B}`, taps
    :math:`t` row-major), applied by :math:`k^2` shifted slices of the zero
    padded input (:mod:`tvconv.apply`), never by ``unfold``. With ``bias=True``
    a second generating block of the same shape produces a per-pixel bias
    ``(c, h, w)`` (the official ``TVConv_Bias``).

    **Stride.** Zero padding :math:`(k - 1) / 2` and output size
    :math:`\lceil H / s \rceil \times \lceil W / s \rceil`, identical to
    ``nn.Conv2d(c, c, k, stride=s, padding=k // 2, groups=c)``; ``size`` is
    this *output* size.

    **Caching.** In eval mode the kernels do not depend on the input, so
    they are generated once, stored in a non-persistent buffer and reused
    (Sec. 3.2); a cached forward costs :math:`k^2` MACs per output element,
    like a depthwise conv. The cache is dropped by :meth:`train`,
    :meth:`load_state_dict`, ``.to()``/``.half()``/... (any ``_apply``) and
    :meth:`reset_parameters`, and it is rebuilt whenever a parameter of the
    layer changed: every eval forward compares, for each of the layer's own
    parameters, its identity, storage and autograd version counter (bumped by
    any in-place update, under ``torch.no_grad()`` too, and by plain and
    ``foreach`` optimizer steps) and the identity and version of its gradient
    with those the cache was built from. No process-global hook is involved.
    Fused optimizers (``fused=True``) update parameters without bumping their
    version; their step is seen through the gradient it follows (set by
    ``backward`` or by hand after the cache was built). Two writes remain
    invisible and need :meth:`clear_cache`: a fused step whose gradients were
    already in place when the cache was built, and an in-place write to
    ``param.data`` (a new ``param.data`` tensor is seen). Cached kernels are
    detached: in eval mode gradients reach the input but not the generator.

    **Other input sizes.** The official layer only takes inputs whose output
    size equals ``size``. Here any input works: for an output size
    ``(h', w') != size`` the affinity maps and the LayerNorm affine maps of
    :math:`\mathcal{B}` are resampled bilinearly (``align_corners=False``)
    to ``(h', w')`` and the kernels are generated at that size (and cached
    per size in eval mode, most recent size only). At the native size the
    path is exactly the plain one.

    **Speed.** On CPU, float32/float64/bfloat16, every path (training, cached eval,
    ``torch.compile``) runs the fused kernel :func:`tvconv.fused.per_pixel_conv`
    when it is built (``make``): one pass over the input, vectorised over channels
    for ``channels_last`` inputs (kept as such, as for ``nn.Conv2d(groups=c)``) or
    over width for contiguous ones, with a fused backward. Without it the pure
    PyTorch paths run: :func:`~tvconv.apply.translation_variant_conv` for training
    and :func:`~tvconv.apply.translation_variant_conv_cached` for cached eval.

    ``torch.compile`` and ``torch.export`` are supported. Under
    ``torch.export`` an eval-mode layer uses the cached kernels when they were
    built beforehand for that size (see :func:`tvconv.freeze`), otherwise
    the generator is traced into the graph.

    Args:
        channels (int): input = output channels :math:`c`.
        kernel_size (int): odd kernel size :math:`k` (default 3).
        stride (int): stride :math:`s \ge 1` (default 1).
        size (int or tuple): output size ``(h, w)`` the affinity maps are
            learned at, i.e. ``(ceil(H / s), ceil(W / s))`` of the training input.
        affinity_channels (int): :math:`c_A` (default 4).
        hidden_channels (int): width of :math:`\mathcal{B}` (default 64).
        hidden_layers (int): hidden blocks of :math:`\mathcal{B}` after the
            first (default 3, i.e. 4 blocks).
        bias (bool): learn a generated per-pixel bias (default ``False``).
        generator_padding_mode (str): padding of the 3x3 convs of
            :math:`\mathcal{B}`: ``"replicate"`` (default; constant affinity
            maps give a plain depthwise conv, borders included) or ``"zeros"``
            (official code).

    Shapes:
        - **input:** ``[B, channels, H, W]``, floating point
        - **output:** ``[B, channels, ceil(H / s), ceil(W / s)]``
    """

    def __init__(self, channels: int, kernel_size: int = 3, stride: int = 1,
                 size: int | tuple[int, int] | None = None, affinity_channels: int = 4,
                 hidden_channels: int = 64, hidden_layers: int = 3, bias: bool = False,
                 generator_padding_mode: str = "replicate"):
        super().__init__()
        self.channels = check_int(channels, "channels", minimum=1)
        self.kernel_size = check_odd_kernel_size(kernel_size)
        self.stride = check_int(stride, "stride", minimum=1)
        if size is None:
            raise TypeError("'size' is required: the output size (h, w) the affinity maps "
                            "are learned at, e.g. size=(ceil(H / stride), ceil(W / stride))")
        self.size = check_pair(size, "size")
        self.affinity_channels = check_int(affinity_channels, "affinity_channels", minimum=1)
        self.hidden_channels = check_int(hidden_channels, "hidden_channels", minimum=1)
        self.hidden_layers = check_int(hidden_layers, "hidden_layers", minimum=0)
        if not isinstance(bias, bool):
            raise TypeError(f"'bias' must be a bool, got {bias!r}")
        check_choice(generator_padding_mode, "generator_padding_mode", PADDING_MODES)
        generator = {"in_channels": self.affinity_channels,
                     "hidden_channels": self.hidden_channels, "size": self.size,
                     "hidden_layers": self.hidden_layers,
                     "padding_mode": generator_padding_mode}
        self.affinity_maps = nn.Parameter(torch.empty(self.affinity_channels, *self.size))
        self.weight_generator = WeightGenerator(
            out_channels=self.channels * self.kernel_size ** 2, **generator)
        self.bias_generator = (WeightGenerator(out_channels=self.channels, **generator)
                               if bias else None)
        # Cached kernels, tap-major channels-last (k*k, h, w, c); bias (h, w, c).
        self.register_buffer("_cached_weight", None, persistent=False)
        self.register_buffer("_cached_bias", None, persistent=False)
        self._cache_key: tuple | None = None
        self._cache_params: tuple[nn.Parameter, ...] = ()
        self._cache_slots: tuple = ()
        # derived from the cache: per input size the tap views of the pure-PyTorch
        # path, under ("fused", channels_last) the kernels and bias the fused kernel reads
        self._cache_planes: dict[object, object] = {}
        self.register_load_state_dict_post_hook(_clear_cache_after_load)
        self.reset_parameters()

    # ------------------------------------------------------------------ setup
    def reset_parameters(self) -> None:
        """Affinity maps to 1 (Sec. 4.1), default init for :math:`\\mathcal{B}`."""
        nn.init.ones_(self.affinity_maps)
        self.weight_generator.reset_parameters()
        if self.bias_generator is not None:
            self.bias_generator.reset_parameters()
        self.clear_cache()

    @property
    def has_bias(self) -> bool:
        """Whether the layer adds a generated per-pixel bias."""
        return self.bias_generator is not None

    def output_size(self, in_size: tuple[int, int]) -> tuple[int, int]:
        """Output ``(h, w)`` for an input of spatial size ``in_size``."""
        return conv_output_size(tuple(in_size), self.kernel_size, self.stride)

    # ------------------------------------------------------------- generation
    def generate(self, size: tuple[int, int] | None = None, *,
                 channels_innermost: bool = False) -> tuple[Tensor, Tensor | None]:
        r"""Generate the kernels :math:`\mathbf{W} = \mathcal{B}(\mathbf{A})` (differentiable).

        Args:
            size: output size ``(h, w)``; default the native ``size``. Other
                sizes resample :math:`\mathbf{A}` and the LayerNorm affine maps.
            channels_innermost: store ``weight`` pixel-major with the channels
                innermost, ``(h, w, k*k, c)`` in memory (the same values; what the
                fused channels-last kernel reads without a copy, see
                :meth:`WeightGenerator.forward_channels_innermost`).

        Returns:
            ``(weight, bias)``: ``weight`` is ``[c, k*k, h, w]``, ``bias`` is
            ``[c, h, w]`` or ``None``.
        """
        size = self.size if size is None else check_pair(size, "size")
        maps = resample_maps(self.affinity_maps, size).unsqueeze(0)
        if channels_innermost:
            weight = self.weight_generator.forward_channels_innermost(maps, self.channels)
            weight = weight.squeeze(0)  # a view both ways (indexing would copy in backward)
        else:
            weight = self.weight_generator(maps).view(self.channels, self.kernel_size ** 2,
                                                      *size)
        bias = None
        if self.bias_generator is not None:
            bias = self.bias_generator(maps).view(self.channels, *size)
        return weight, bias

    # ------------------------------------------------------------------ cache
    def _cache_state(self, size: tuple[int, int]) -> tuple:
        # Per parameter: its storage and autograd version (in-place edits, also
        # under no_grad and by foreach optimizers, bump it), and the identity and
        # version of its gradient (fused optimizers update in place without
        # bumping the version, but a step follows a change of the gradients).
        return (size, *[(p.data_ptr(), p._version, id(p.grad),
                         None if p.grad is None else p.grad._version)
                        for p in self._cache_params])

    def _cache_is_current(self, size: tuple[int, int]) -> bool:
        if self._cached_weight is None or self._cache_key is None:
            return False
        if any(slots.get(name) is not held for slots, name, held in self._cache_slots):
            return False  # a parameter or a submodule was replaced
        return self._cache_state(size) == self._cache_key

    def _slots(self) -> tuple:
        # (dict, name, value) of every parameter and submodule of the layer: checking
        # these few dict entries sees any replacement without walking the module tree
        return tuple((table, name, value) for module in self.modules()
                     for table in (module._parameters, module._modules)
                     for name, value in table.items())

    @torch.no_grad()
    def _refresh_cache(self, size: tuple[int, int]) -> tuple[Tensor, Tensor | None]:
        if not self._cache_is_current(size):
            self._cache_params = tuple(self.parameters())
            self._cache_slots = self._slots()
            weight, bias = self.generate(size)
            self._cached_weight = to_tap_major(weight)
            self._cached_bias = None if bias is None else bias.permute(1, 2, 0).contiguous()
            self._cache_planes = {}
            self._cache_key = self._cache_state(size)
        return self._cached_weight, self._cached_bias

    _refresh_cache_eagerly = torch.compiler.disable(_refresh_cache)

    def cache_weights(self, size: tuple[int, int] | None = None) -> tuple[Tensor, Tensor | None]:
        """Build (or reuse) the inference cache and return the cached kernels.

        Args:
            size: output size ``(h, w)``; default the native ``size``.

        Returns:
            ``(weight, bias)`` as views with layout ``[c, k*k, h, w]`` and
            ``[c, h, w]`` (``bias`` is ``None`` without a bias). They are
            detached; the generator is not needed to apply them.
        """
        size = self.size if size is None else check_pair(size, "size")
        weight, bias = self._refresh_cache(size)
        return from_tap_major(weight), None if bias is None else bias.permute(2, 0, 1)

    def clear_cache(self) -> None:
        """Drop the cached kernels (rebuilt by the next eval forward)."""
        self._cached_weight = None
        self._cached_bias = None
        self._cache_key = None
        self._cache_params = ()
        self._cache_slots = ()
        self._cache_planes = {}

    @property
    def cached_size(self) -> tuple[int, int] | None:
        """Output size ``(h, w)`` of the cached kernels, ``None`` without a cache.

        A cache may be stale; the next eval forward (or :meth:`cache_weights`)
        checks and rebuilds it.
        """
        cached = self._cached_weight
        return None if cached is None else (cached.shape[1], cached.shape[2])

    def train(self, mode: bool = True) -> TVConv:
        if mode:
            self.clear_cache()
        return super().train(mode)

    def _apply(self, fn, recurse=True):  # .to(), .half(), .cuda(), ...
        self.clear_cache()
        return super()._apply(fn, recurse)

    # ---------------------------------------------------------------- forward
    def forward(self, x: Tensor) -> Tensor:
        """Apply the layer to ``x`` of shape ``[B, channels, H, W]``."""
        check_image_batch(x, "x", channels=self.channels)
        if x.dtype != self.affinity_maps.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(f"'x' has dtype {x.dtype} but the layer's parameters are "
                            f"{self.affinity_maps.dtype}; convert one of them "
                            f"(e.g. layer.to({x.dtype}))")
        size = self.output_size((x.shape[2], x.shape[3]))
        if self.training:  # differentiable generation on every call
            # kernels in the layout the fused kernel reads in place for this input
            weight, bias = self.generate(size, channels_innermost=fused_applies(x)
                                         and kernel_runs_channels_last(x, self.stride))
            return per_pixel_conv(x, weight.to(x.dtype), _cast(bias, x.dtype),
                                  stride=self.stride)
        if torch.compiler.is_exporting():
            return self._forward_exporting(x, size)
        compiling = torch.compiler.is_compiling()
        refresh = self._refresh_cache_eagerly if compiling else self._refresh_cache
        weight, bias = refresh(size)  # tap-major (k*k, h, w, c), bias (h, w, c)
        planes = None
        if weight.dtype != x.dtype:  # autocast
            weight, bias = weight.to(x.dtype), _cast(bias, x.dtype)
        if fused_applies(x) and not compiling:
            # the cache's layouts were checked against x's size when they were built
            return torch.ops.tvconv.per_pixel_conv(x, *self._fused_layout(weight, bias, x),
                                                   self.stride)
        if compiling or (torch.is_grad_enabled() and x.requires_grad):
            return per_pixel_conv(x, from_tap_major(weight),
                                  None if bias is None else bias.permute(2, 0, 1),
                                  stride=self.stride)
        if weight is self._cached_weight:  # reuse the per-tap weight views
            in_size = (x.shape[2], x.shape[3])
            planes = self._cache_planes.get(in_size)
            if planes is None:
                planes = self._cache_planes[in_size] = tap_planes(weight, in_size, self.stride)
        return translation_variant_conv_cached(x, weight, bias, stride=self.stride,
                                               planes=planes)

    def _fused_layout(self, weight: Tensor, bias: Tensor | None,
                      x: Tensor) -> tuple[Tensor, Tensor | None]:
        # What the fused kernel reads for x: the tap-major cache as it is where it runs
        # channels-last, (c, k*k, h, w) rows for the flattened planes; built once per
        # layout and kept beside the cache.
        last = kernel_runs_channels_last(x, self.stride)
        layout = self._cache_planes.get(("fused", last)) if weight is self._cached_weight else None
        if layout is None:
            kernels = from_tap_major(weight)
            bias_view = None if bias is None else bias.permute(2, 0, 1)
            if not last:
                kernels = kernels.contiguous()
                bias_view = None if bias_view is None else bias_view.contiguous()
            layout = (kernels, bias_view)
            if weight is self._cached_weight:
                self._cache_planes["fused", last] = layout
        return layout

    def _forward_exporting(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        # No eager side effects while tracing: use a cache built beforehand for
        # this size (tvconv.freeze), else trace the generator into the graph.
        cached = self._cached_weight
        if cached is not None and tuple(cached.shape[1:3]) == size:
            weight = from_tap_major(cached)
            bias = None if self._cached_bias is None else self._cached_bias.permute(2, 0, 1)
        else:
            weight, bias = self.generate(size)
        return per_pixel_conv(x, weight, bias, stride=self.stride)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, size={self.size}, "
                f"affinity_channels={self.affinity_channels}, "
                f"hidden_channels={self.hidden_channels}, "
                f"hidden_layers={self.hidden_layers}, bias={self.has_bias})")


def _clear_cache_after_load(module: TVConv, incompatible_keys) -> None:
    module.clear_cache()


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return None if t is None else t.to(dtype)


def tvconv_layers(model: nn.Module) -> list[tuple[str, TVConv]]:
    """All :class:`TVConv` layers of ``model`` as ``(qualified name, layer)``, in module order.

    A bare :class:`TVConv` gives ``[("", layer)]``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module, got {type(model).__name__}")
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, TVConv)]
