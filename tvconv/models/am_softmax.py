r"""Additive-margin softmax (AM-Softmax) loss for face embeddings.

Wang et al., "Additive Margin Softmax for Face Verification" (IEEE SPL 2018),
the loss the TVConv paper trains its face models with (Sec. 4.1, which gives no
margin or scale). The defaults m = 0.35 and s = 32 are AM-Softmax's recommended
margin (its paper uses s = 30) and the scale of the official TVConv face code.
With unit embeddings :math:`\hat{x}_i` and unit class weights
:math:`\hat{w}_j`, :math:`\cos\theta_{ij} = \hat{w}_j^\top \hat{x}_i` and

.. math::
    \mathcal{L}_{AMS} = -\frac{1}{n} \sum_{i=1}^{n} \log
    \frac{e^{s (\cos\theta_{i y_i} - m)}}
         {e^{s (\cos\theta_{i y_i} - m)} + \sum_{j \ne y_i} e^{s \cos\theta_{ij}}}.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._checks import check_int


def _check_labels(labels: Tensor, batch: int, num_classes: int) -> None:
    if not isinstance(labels, Tensor) or labels.dtype not in (torch.int64, torch.int32):
        raise TypeError("'labels' must be an int64 (or int32) tensor of class indices")
    if labels.shape != (batch,):
        raise ValueError(f"'labels' must have shape ({batch},), got {tuple(labels.shape)}")
    if batch and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"'labels' must lie in [0, {num_classes}), got values in "
                         f"[{int(labels.min())}, {int(labels.max())}]")


def am_softmax_logits(embeddings: Tensor, weight: Tensor, labels: Tensor | None = None, *,
                      margin: float = 0.35, scale: float = 32.0) -> Tensor:
    r"""Scaled cosine logits :math:`s (\cos\theta_{ij} - m [j = y_i])`.

    Args:
        embeddings: ``[n, d]`` (normalised here; zero rows give zero cosines).
        weight: class weights ``[num_classes, d]`` (normalised here).
        labels: ``[n]`` class indices; ``None`` gives the margin-free logits
            used for prediction.
        margin: additive cosine margin :math:`m`.
        scale: scale :math:`s`.

    Returns:
        ``[n, num_classes]`` logits.
    """
    if embeddings.dim() != 2 or weight.dim() != 2 or embeddings.shape[1] != weight.shape[1]:
        raise ValueError(f"'embeddings' [n, d] and 'weight' [num_classes, d] must agree in d, "
                         f"got {tuple(embeddings.shape)} and {tuple(weight.shape)}")
    cosine = F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).t()
    if labels is not None:
        _check_labels(labels, embeddings.shape[0], weight.shape[0])
        cosine = cosine - margin * F.one_hot(labels.long(), weight.shape[0]).to(cosine.dtype)
    return scale * cosine


class AMSoftmax(nn.Module):
    r"""AM-Softmax classifier head and loss (see the module docstring).

    Args:
        embedding_dim (int): embedding size :math:`d` (512 in the paper).
        num_classes (int): number of training identities.
        margin (float): additive margin :math:`m` (default 0.35).
        scale (float): scale :math:`s` (default 32).

    ``forward(embeddings [n, d], labels [n]) -> scalar loss``;
    :meth:`logits` gives the ``[n, num_classes]`` logits.
    """

    def __init__(self, embedding_dim: int, num_classes: int, margin: float = 0.35,
                 scale: float = 32.0):
        super().__init__()
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", minimum=1)
        self.num_classes = check_int(num_classes, "num_classes", minimum=1)
        if not margin >= 0:
            raise ValueError(f"'margin' must be >= 0, got {margin}")
        if not scale > 0:
            raise ValueError(f"'scale' must be > 0, got {scale}")
        self.margin, self.scale = float(margin), float(scale)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.embedding_dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)

    def logits(self, embeddings: Tensor, labels: Tensor | None = None) -> Tensor:
        """``[n, num_classes]`` logits (with the margin on the true class if ``labels``)."""
        return am_softmax_logits(embeddings, self.weight, labels, margin=self.margin,
                                 scale=self.scale)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Mean AM-Softmax loss of ``embeddings [n, d]`` with class ``labels [n]``."""
        return F.cross_entropy(self.logits(embeddings, labels), labels.long())

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.embedding_dim}, {self.num_classes}, "
                f"margin={self.margin}, scale={self.scale})")
