r"""FLOPs of one call of a leaf module: the ptflops rules, and a registry for more.

===========================================  ======================================
module                                       FLOPs (= MACs) per call
===========================================  ======================================
``Conv{1,2,3}d``                             ``out.numel() * C_in / groups * prod(k)``
                                             (+ ``out.numel()`` with a bias)
``ConvTranspose{1,2,3}d``                    ``in.numel() * C_out / groups * prod(k)``
                                             (+ ``out.numel()`` with a bias)
``Linear`` (torch's and PyG's)               ``in.numel() * out_features`` (+ bias)
norm layers (BatchNorm, LayerNorm, ...)      ``in.numel()``, x2 if affine      [*]
activations (ReLU, ReLU6, PReLU, ...)        ``out.numel()``                    [*]
pooling (max, average, adaptive)             ``in.numel()``                     [*]
``Upsample``                                 ``out.numel()``                    [*]
``Dropout``, ``Flatten``, ``Identity``, ...  0
===========================================  ======================================

``elementwise=False`` drops the rows marked [*]. Functional calls inside a
``forward`` (``x + y``, ``torch.cat``, ``F.relu``) are not counted, as in ptflops.

Other packages add rules for their own layers with :func:`register_module_rule`
(:mod:`tvconv.macs` registers TVConv's); a registered type is priced as one
unit (its children are not hooked) and its count goes to the component the
registration names.
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from torch import Tensor, nn

__all__ = ["ModuleRule", "is_linear", "leaf_flops", "module_rule", "register_module_rule"]

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm,
          nn.GroupNorm, nn.LayerNorm)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU,
                nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Mish, nn.Softplus)
_POOLS = (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
          nn.modules.pooling._AdaptiveMaxPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd)
_FREE = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Flatten,
         nn.Unflatten, nn.Identity, nn.ChannelShuffle, nn.PixelShuffle, nn.PixelUnshuffle,
         nn.Softmax, nn.LogSoftmax)


@dataclasses.dataclass(frozen=True)
class ModuleRule:
    """A FLOP rule registered for a module type.

    Attributes:
        flops: ``flops(module, inp, out, *, elementwise, include_generator) -> int``.
        component: the :data:`~pyg_hgconv.profile.counter.COMPONENTS` entry its
            count belongs to (outside the clustering).
    """

    flops: Callable[..., int]
    component: str = "grid_conv"


_RULES: dict[type, ModuleRule] = {}


def register_module_rule(module_type: type[nn.Module], flops: Callable[..., int],
                         component: str = "grid_conv") -> ModuleRule:
    """Price every ``module_type`` (and subclass) call with ``flops`` (see
    :class:`ModuleRule`). Registering a type again replaces its rule."""
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise TypeError(f"'module_type' must be an nn.Module subclass (got {module_type!r})")
    rule = ModuleRule(flops, component)
    _RULES[module_type] = rule
    return rule


def module_rule(module: nn.Module) -> ModuleRule | None:
    """The registered rule of ``module``'s type (or of a base class), if any."""
    for cls in type(module).__mro__:
        rule = _RULES.get(cls)
        if rule is not None:
            return rule
    return None


def is_linear(module: nn.Module) -> bool:
    """Whether ``module`` is a torch or PyG ``Linear``."""
    from torch_geometric.nn.dense.linear import Linear as PyGLinear

    return isinstance(module, (nn.Linear, PyGLinear))


def linear_channels(module: nn.Module) -> tuple[int, int]:
    """``(in, out)`` features of a torch or PyG ``Linear``."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return module.in_channels, module.out_channels


def _norm_is_affine(module: nn.Module) -> bool:
    return bool(getattr(module, "affine", False) or getattr(module, "elementwise_affine", False))


def leaf_flops(module: nn.Module, inp: Tensor, out: Tensor, elementwise: bool = True,
               include_generator: bool = False) -> int:
    """FLOPs of one call of a leaf ``module`` with input ``inp`` and output ``out``
    (the table of the module docstring, or the module's registered rule).

    Returns ``-1`` for an unknown module type.
    """
    rule = module_rule(module)
    if rule is not None:
        return int(rule.flops(module, inp, out, elementwise=elementwise,
                              include_generator=include_generator))
    if isinstance(module, _CONVS):
        per_output = module.in_channels // module.groups * math.prod(module.kernel_size)
        return out.numel() * (per_output + int(module.bias is not None))
    if isinstance(module, _TRANSPOSED):
        per_input = module.out_channels // module.groups * math.prod(module.kernel_size)
        return inp.numel() * per_input + out.numel() * int(module.bias is not None)
    if is_linear(module):
        return inp.numel() * linear_channels(module)[1] + out.numel() * int(
            module.bias is not None)
    if isinstance(module, _NORMS):
        return elementwise * inp.numel() * (2 if _norm_is_affine(module) else 1)
    if isinstance(module, _ACTIVATIONS):
        return elementwise * out.numel()
    if isinstance(module, _POOLS):
        return elementwise * inp.numel()
    if isinstance(module, nn.Upsample):
        return elementwise * out.numel()
    if isinstance(module, _FREE):
        return 0
    return -1
