"""Grid network -> HG network conversion ("w/ transfer", paper Table 3)."""
from __future__ import annotations

from torch import nn

from .segmentation import HGResNetSeg, ResNetSeg
from .unet import HGResUNet, ResUNet

#: grid model class -> its HG counterpart
HG_COUNTERPARTS: dict[type[nn.Module], type[nn.Module]] = {
    ResNetSeg: HGResNetSeg,
    ResUNet: HGResUNet,
}


def hg_from_grid(grid_model: nn.Module, conv: str = "hgconv", **kwargs) -> nn.Module:
    """Build the HG variant of a grid model, reusing every weight of it.

    :class:`~.segmentation.ResNetSeg` becomes :class:`~.segmentation.HGResNetSeg`
    and :class:`~.unet.ResUNet` becomes :class:`~.unet.HGResUNet` (their
    ``from_grid`` classmethods). The 3x3 kernels of the layers moved onto the
    group graph are transferred through :meth:`~pyg_hgconv.HGConv.from_conv2d`
    when ``conv='hgconv'``; any other registry graph conv keeps its own
    initialisation there (BatchNorms and 1x1 layers are still copied). The new
    fusion convs start as pass-throughs of the HG output.

    Args:
        grid_model: a :class:`ResNetSeg` or :class:`ResUNet`.
        conv (str): registry graph conv of the HG stages.
        **kwargs: HG options (``ratio``, ``num_groups``, ``attention``,
            ``focus_class``, ``conv_kwargs``, clustering options, ...).

    Returns:
        The HG model, in the grid model's training mode, dtype and device;
        the grid model is left unchanged.
    """
    target = HG_COUNTERPARTS.get(type(grid_model))
    if target is None:
        raise TypeError(f"no HG counterpart for {type(grid_model).__name__}; expected one of "
                        f"{sorted(c.__name__ for c in HG_COUNTERPARTS)}")
    return target.from_grid(grid_model, conv=conv, **kwargs)
