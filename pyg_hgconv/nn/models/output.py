r"""The output contract of every segmentation model of :mod:`pyg_hgconv.nn.models`.

Every model returns a :class:`SegmentationOutput`:

==============  ==================================================================
field           meaning
==============  ==================================================================
``out``         logits ``[B, K, H, W]`` at the **input** resolution (bilinear
                upsampling, ``align_corners=False``); ``K = 1`` is a binary
                task (one logit, sigmoid).
``aux``         logits ``[B, K, H, W]`` of the auxiliary head on the input of the
                HG module (stage 3), at the input resolution, or ``None``. It is
                computed in training mode, and in evaluation mode when active
                focus needs it: with ``attention`` set it is *the coarse
                prediction* that drove the centre allocation.
``aux_weight``  weight of the auxiliary loss (paper: 0.4).
``attention``   the active-focus map ``[B, 1, h, w]`` in ``[0, 1]`` at the
                resolution of the HG module's input (``None`` without focus).
``graphs``      the group graphs of the model's clusterings, in order (empty for
                grid models); a decoder that re-uses the encoder's assignment
                adds no graph of its own.
==============  ==================================================================

:meth:`SegmentationOutput.loss` is the matching loss, in the form the
benchmark training loop expects (``(loss, {name: float})``).
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor

#: label of pixels without ground truth (Cityscapes / CamVid convention)
IGNORE_INDEX = 255


def upsample_to(logits: Tensor | None, size: tuple[int, int]) -> Tensor | None:
    """Bilinear resize of ``logits`` ``[B, K, h, w]`` to ``size`` (no-op when equal)."""
    if logits is None or tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)


def segmentation_loss(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    r"""Mean per-pixel loss of ``logits`` ``[B, K, H, W]``.

    * ``K > 1``: cross-entropy with ``target`` ``[B, H, W]`` class indices;
    * ``K = 1``: binary cross-entropy with logits, ``target`` ``[B, H, W]``
      or ``[B, 1, H, W]`` in ``{0, 1}`` (or soft labels in ``[0, 1]``).

    Pixels labelled ``ignore_index`` are left out; an image without a labelled
    pixel gives a loss of 0 (never NaN).
    """
    if logits.dim() != 4:
        raise ValueError(f"'logits' must be [B, K, H, W] (got {tuple(logits.shape)})")
    b, k, h, w = logits.shape
    if target.dim() == 4 and target.size(1) == 1:
        target = target[:, 0]
    if tuple(target.shape) != (b, h, w):
        raise ValueError(f"'target' must have shape [B, H, W] = [{b}, {h}, {w}] "
                         f"(got {tuple(target.shape)})")
    valid = target != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    if k == 1:
        label = torch.where(valid, target, 0).to(logits.dtype)
        loss = F.binary_cross_entropy_with_logits(logits[:, 0], label, reduction="none")
        return loss[valid].mean()
    return F.cross_entropy(logits, target.long(), ignore_index=ignore_index)


@dataclasses.dataclass
class SegmentationOutput:
    """What a segmentation model returns (see the module docstring)."""

    out: Tensor
    aux: Tensor | None = None
    aux_weight: float = 0.4
    attention: Tensor | None = None
    graphs: tuple = ()

    def loss(self, target: Tensor, ignore_index: int = IGNORE_INDEX
             ) -> tuple[Tensor, dict[str, float]]:
        """``main + aux_weight * aux`` (:func:`segmentation_loss`), and the
        float values of the terms (``'loss'``, ``'main'``, ``'aux'``)."""
        main = segmentation_loss(self.out, target, ignore_index)
        total = main
        logs = {"main": float(main.detach())}
        if self.aux is not None and self.aux_weight:
            aux = segmentation_loss(self.aux, target, ignore_index)
            total = total + self.aux_weight * aux
            logs["aux"] = float(aux.detach())
        logs["loss"] = float(total.detach())
        return total, logs
