r"""Segmentation heads and the coarse-prediction attention of active focus.

:class:`FCNHead` is the head of every model here: the main head of the
ResNet segmentation networks, the auxiliary head on the input of the HG
module (Sec. 5.1, weight 0.4, Table 12) and the coarse head of active focus
(Sec. 5.3), which is the same auxiliary head: its prediction, turned into an
attention map by :func:`coarse_attention`, drives the centre allocation
(supplementary D, Eqs. 11-13).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pyg_hgconv.nn.pool.importance import object_attention, uncertainty_attention
from pyg_hgconv.utils.checks import check_float_tensor, check_positive_int

#: active-focus modes: object-aware (Eq. 12) and uncertainty-aware (Eq. 13)
FOCUS_MODES = ("object", "uncertainty")


class FCNHead(nn.Sequential):
    r"""FCN head: 3x3 conv (:math:`C \to C/4`), BN, ReLU, dropout, 1x1 conv to
    the class logits (the FCN / torchvision layout).

    Args:
        in_channels (int): input channels :math:`C`.
        num_classes (int): output channels (1 for a binary task).
        hidden_channels (int, optional): width of the 3x3 conv (default :math:`C/4`).
        dropout (float): dropout before the classifier.

    Shapes: ``[B, C, H, W] -> [B, num_classes, H, W]``.
    """

    def __init__(self, in_channels: int, num_classes: int, hidden_channels: int | None = None,
                 dropout: float = 0.1):
        check_positive_int(in_channels, "in_channels")
        check_positive_int(num_classes, "num_classes")
        hidden = max(1, in_channels // 4) if hidden_channels is None else hidden_channels
        check_positive_int(hidden, "hidden_channels")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"'dropout' must lie in [0, 1) (got {dropout!r})")
        super().__init__(
            nn.Conv2d(in_channels, hidden, 3, padding=1, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(hidden, num_classes, 1),
        )
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.dropout = dropout


def check_focus(attention: str | None, focus_class: int | None, num_classes: int) -> int | None:
    """Validate the active-focus options of a model; returns the class of
    object-aware focus (``0`` by default for a binary, one-logit model)."""
    if attention is None:
        if focus_class is not None:
            raise ValueError("'focus_class' is only used with attention='object'")
        return None
    if attention not in FOCUS_MODES:
        raise ValueError(f"'attention' must be one of {FOCUS_MODES} or None (got {attention!r})")
    if attention == "uncertainty":
        if focus_class is not None:
            raise ValueError("'focus_class' is only used with attention='object'")
        return None
    if focus_class is None:
        if num_classes != 1:
            raise ValueError("attention='object' with several classes needs 'focus_class', the "
                             "class k of Eq. 12")
        return 0
    if isinstance(focus_class, bool) or not isinstance(focus_class, int) or not (
            0 <= focus_class < num_classes):
        raise ValueError(f"'focus_class' must be an int in [0, {num_classes}) "
                         f"(got {focus_class!r})")
    return focus_class


def class_probabilities(logits: Tensor) -> Tensor:
    """Probabilities of a prediction ``[B, K, H, W]``: softmax over ``K``, or a
    sigmoid for a single-logit (binary) prediction."""
    check_float_tensor(logits, "logits", ndim=4, shape_hint="[B, K, H, W]")
    return torch.sigmoid(logits) if logits.size(1) == 1 else torch.softmax(logits, dim=1)


def coarse_attention(logits: Tensor, mode: str, focus_class: int | None = None) -> Tensor:
    r"""Attention map ``[B, 1, H, W]`` of active focus from a coarse prediction.

    Args:
        logits (Tensor): coarse logits ``[B, K, H, W]`` (``K = 1``: binary).
        mode (str): ``'object'``: :math:`C_{attn} = P_k` (Eq. 12);
            ``'uncertainty'``: the normalised entropy of :math:`P` (Eq. 13).
        focus_class (int, optional): :math:`k` of ``'object'`` (default 0 for
            a binary prediction).

    The map is detached: it only decides where centres are sampled.
    """
    k = check_focus(mode, focus_class, logits.size(1))
    probs = class_probabilities(logits.detach())
    if mode == "object":
        return object_attention(probs, k)
    return uncertainty_attention(probs)
