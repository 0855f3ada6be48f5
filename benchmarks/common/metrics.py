r"""Task metrics of every benchmark, in one module.

=====================  ====================================================================
task                   metrics
=====================  ====================================================================
semantic segmentation  :class:`ConfusionMatrix` (mIoU, per-class IoU, pixel / mean accuracy),
                       accumulated over batches and summed over DDP ranks
binary segmentation    :func:`binary_iou`, :func:`dice`, :func:`hausdorff_distance`,
                       :func:`hd95`, :func:`binary_rates`, :func:`roc_auc` (fundus: pass the
                       field-of-view as ``valid``)
roads                  :func:`road_iou`, :func:`topology_score` (APLS-like, *not* official APLS)
saliency               :func:`max_f_measure` (+ :func:`f_measure_curve`),
                       :func:`mean_absolute_error`
faces                  :func:`identification_accuracy`, :func:`verification_accuracy`
                       (+ :func:`verification_folds`)
=====================  ====================================================================

Conventions
-----------
* Masks are ``[H, W]`` or batched ``[..., H, W]`` tensors (numpy arrays are
  accepted). A mask is binarised by :func:`binarize`: ``bool`` as is, integer
  ``> 0`` (0/1 or 0/255 masks), floating ``> threshold`` (probabilities).
* ``reduction``: ``"mean"`` (mean of the per-image values, the default),
  ``"none"`` (the per-image values, a tensor of the batch shape) or, where it is
  meaningful, ``"global"`` (all pixels of all images pooled into one count).
* Scalar results are Python ``float``; per-image / per-class results are
  tensors. Degenerate inputs (empty masks, absent classes) give documented,
  finite values, never NaN.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.distributed as dist
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from torch import Tensor

REDUCTIONS = ("mean", "none", "global")


# --------------------------------------------------------------------------- helpers
def class_ids(logits: Tensor) -> Tensor:
    """The predicted class of every pixel: the index of the largest of the
    ``C`` scores of ``logits [B, C, ...]`` (the first one on ties), ``[B, ...]``.

    This is ``logits.argmax(1)``, computed with ``max(1)``: on the
    full-resolution logits of a CamVid evaluation batch PyTorch's CPU
    ``argmax`` over the (strided) class dimension is several times slower than
    ``max``, and it was most of the time of an evaluation.
    """
    if not isinstance(logits, Tensor):
        raise TypeError(f"'logits' must be a tensor [B, C, ...] (got {type(logits).__name__})")
    if logits.dim() < 2:
        raise ValueError(f"'logits' must be a tensor [B, C, ...] (got shape "
                         f"{tuple(logits.shape)})")
    return logits.max(1).indices


def _as_tensor(x, name: str) -> Tensor:
    if isinstance(x, Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"'{name}' must be a torch.Tensor or numpy array (got {type(x).__name__})")


def binarize(mask, threshold: float = 0.5, name: str = "mask") -> Tensor:
    """``bool`` version of ``mask``: bool as is, integers ``> 0``, floats ``> threshold``."""
    mask = _as_tensor(mask, name)
    if mask.dtype == torch.bool:
        return mask
    if mask.is_floating_point():
        return mask > threshold
    if mask.is_complex():
        raise TypeError(f"'{name}' must be a real tensor (got {mask.dtype})")
    return mask > 0


def _check_reduction(reduction: str, allowed: Sequence[str] = REDUCTIONS) -> None:
    if reduction not in allowed:
        raise ValueError(f"'reduction' must be one of {list(allowed)} (got {reduction!r})")


def _check_masks(pred, target, valid, threshold: float) -> tuple[Tensor, Tensor, Tensor]:
    pred_b = binarize(pred, threshold, "pred")
    target_b = binarize(target, 0.5, "target")
    if pred_b.shape != target_b.shape:
        raise ValueError(f"'pred' {tuple(pred_b.shape)} and 'target' {tuple(target_b.shape)} "
                         f"must have the same shape")
    if pred_b.dim() < 2:
        raise ValueError(f"masks must be [..., H, W] (got shape {tuple(pred_b.shape)})")
    if valid is None:
        valid_b = torch.ones_like(target_b)
    else:
        valid_b = binarize(valid, 0.5, "valid")
        if valid_b.shape != target_b.shape:
            valid_b = valid_b.expand_as(target_b)
    return pred_b, target_b, valid_b


def _reduce(values: Tensor, reduction: str) -> float | Tensor:
    if reduction == "none":
        return values
    return float(values.double().mean()) if values.numel() else 0.0


def _ratio(num: Tensor, den: Tensor, empty: float) -> Tensor:
    """``num / den`` as float64, ``empty`` where ``den == 0``."""
    num, den = num.double(), den.double()
    return torch.where(den > 0, num / den.clamp_min(1e-300), torch.full_like(num, empty))


# ------------------------------------------------------------ semantic segmentation
class ConfusionMatrix:
    r"""A ``[C, C]`` confusion matrix accumulated over batches (rows: target, columns: prediction).

    Metrics (with :math:`\mathrm{TP}_c` the diagonal, :math:`G_c` the row sums
    and :math:`P_c` the column sums):

    * :meth:`iou_per_class`: :math:`\mathrm{IoU}_c = \mathrm{TP}_c / (G_c + P_c - \mathrm{TP}_c)`;
    * :meth:`miou`: the mean of :math:`\mathrm{IoU}_c` over the *present* classes,
      those with :math:`G_c + P_c > 0` (the usual protocol: a class that occurs
      neither in the targets nor in the predictions is not counted);
    * :meth:`pixel_accuracy`: :math:`\sum_c \mathrm{TP}_c / \sum_c G_c`;
    * :meth:`mean_accuracy`: mean of :math:`\mathrm{TP}_c / G_c` over classes with
      :math:`G_c > 0`.

    Absent classes have IoU / accuracy 0 in the per-class tensors (see
    :attr:`present`); every metric of an empty matrix is 0.

    Args:
        num_classes (int): number of classes ``C``.
        ignore_index (int, optional): target value whose pixels are skipped.
        device (torch.device, optional): where the matrix lives (use the GPU
            for NCCL :meth:`all_reduce`).
    """

    def __init__(self, num_classes: int, ignore_index: int | None = None,
                 device: torch.device | str | None = None) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"'num_classes' must be an int >= 1 (got {num_classes!r})")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)

    def reset(self) -> ConfusionMatrix:
        """Zero the matrix."""
        self.matrix.zero_()
        return self

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> ConfusionMatrix:
        r"""Add a batch.

        Args:
            pred (Tensor): predicted class ids ``[B, H, W]`` (any shape equal to
                ``target``'s) or logits/probabilities ``[B, C, H, W]`` (argmax over
                dim 1).
            target (Tensor): integer class ids ``[B, H, W]``; ``ignore_index``
                pixels are skipped.
        """
        pred, target = _as_tensor(pred, "pred"), _as_tensor(target, "target")
        if target.is_floating_point():
            raise TypeError(f"'target' must hold integer class ids (got {target.dtype})")
        if pred.is_floating_point():
            if pred.dim() != target.dim() + 1 or pred.shape[1] != self.num_classes:
                raise ValueError(
                    f"floating 'pred' must be logits [B, {self.num_classes}, ...] matching "
                    f"'target' {tuple(target.shape)} (got {tuple(pred.shape)})")
            pred = class_ids(pred)
        if pred.shape != target.shape:
            raise ValueError(f"'pred' {tuple(pred.shape)} and 'target' {tuple(target.shape)} "
                             f"must have the same shape")
        device = self.matrix.device
        pred, target = pred.to(device).long().flatten(), target.to(device).long().flatten()
        if self.ignore_index is not None:
            keep = target != self.ignore_index
            pred, target = pred[keep], target[keep]
        c = self.num_classes
        if target.numel():
            if target.min() < 0 or target.max() >= c:
                bad = target[(target < 0) | (target >= c)][0].item()
                raise ValueError(f"'target' holds class id {bad} outside [0, {c}) that is not "
                                 f"ignore_index={self.ignore_index}")
            if pred.min() < 0 or pred.max() >= c:
                bad = pred[(pred < 0) | (pred >= c)][0].item()
                raise ValueError(f"'pred' holds class id {bad} outside [0, {c})")
        self.matrix += torch.bincount(target * c + pred, minlength=c * c).view(c, c)
        return self

    def all_reduce(self) -> ConfusionMatrix:
        """Sum the matrix over all ranks when ``torch.distributed`` is initialised."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix, op=dist.ReduceOp.SUM)
        return self

    @property
    def present(self) -> Tensor:
        """``bool [C]``: classes that occur in the targets or the predictions."""
        return (self.matrix.sum(0) + self.matrix.sum(1)) > 0

    def iou_per_class(self) -> Tensor:
        """``float64 [C]`` intersection over union per class (0 for absent classes)."""
        tp = self.matrix.diag()
        union = self.matrix.sum(0) + self.matrix.sum(1) - tp
        return _ratio(tp, union, 0.0).cpu()

    def accuracy_per_class(self) -> Tensor:
        """``float64 [C]`` recall per class (0 for classes absent from the targets)."""
        return _ratio(self.matrix.diag(), self.matrix.sum(1), 0.0).cpu()

    def miou(self) -> float:
        """Mean IoU over the present classes (0 when nothing was counted)."""
        present = self.present.cpu()
        return float(self.iou_per_class()[present].mean()) if present.any() else 0.0

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly (0 when nothing was counted)."""
        total = int(self.matrix.sum())
        return int(self.matrix.diag().sum()) / total if total else 0.0

    def mean_accuracy(self) -> float:
        """Mean per-class recall over classes present in the targets."""
        has_target = (self.matrix.sum(1) > 0).cpu()
        return float(self.accuracy_per_class()[has_target].mean()) if has_target.any() else 0.0

    def summary(self, class_names: Sequence[str] | None = None) -> dict:
        """All metrics as a JSON-ready dict (per-class IoU keyed by name when given)."""
        ious = self.iou_per_class().tolist()
        names = list(class_names) if class_names is not None else [str(i) for i in
                                                                     range(self.num_classes)]
        if len(names) != self.num_classes:
            raise ValueError(f"'class_names' has {len(names)} names for {self.num_classes} "
                             f"classes")
        return {"miou": self.miou(), "pixel_accuracy": self.pixel_accuracy(),
                "mean_accuracy": self.mean_accuracy(),
                "iou_per_class": dict(zip(names, ious, strict=True))}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(num_classes={self.num_classes}, "
                f"ignore_index={self.ignore_index}, pixels={int(self.matrix.sum())})")


# -------------------------------------------------------------- binary segmentation
def binary_iou(pred, target, *, threshold: float = 0.5, valid=None,
               reduction: str = "mean") -> float | Tensor:
    r"""Intersection over union of binary masks, :math:`|P \cap G| / |P \cup G|`.

    Args:
        pred: predicted mask or probabilities ``[..., H, W]``.
        target: ground-truth mask ``[..., H, W]``.
        threshold (float): probability threshold for a floating ``pred``.
        valid: optional mask of the pixels to count (e.g. a fundus FOV).
        reduction (str): ``"mean"`` | ``"none"`` | ``"global"``.

    An image where both masks are empty has IoU 1 (perfect agreement).
    """
    _check_reduction(reduction)
    p, t, v = _check_masks(pred, target, valid, threshold)
    dims = (-2, -1) if reduction != "global" else tuple(range(p.dim()))
    inter = (p & t & v).sum(dims)
    union = ((p | t) & v).sum(dims)
    values = _ratio(inter, union, 1.0)
    return float(values) if reduction == "global" else _reduce(values, reduction)


def dice(pred, target, *, threshold: float = 0.5, valid=None,
         reduction: str = "mean") -> float | Tensor:
    r"""Dice coefficient (F1) of binary masks, :math:`2|P \cap G| / (|P| + |G|)`.

    Same arguments as :func:`binary_iou`; both masks empty gives 1.
    """
    _check_reduction(reduction)
    p, t, v = _check_masks(pred, target, valid, threshold)
    dims = (-2, -1) if reduction != "global" else tuple(range(p.dim()))
    inter = (p & t & v).sum(dims)
    total = (p & v).sum(dims) + (t & v).sum(dims)
    values = _ratio(2 * inter, total, 1.0)
    return float(values) if reduction == "global" else _reduce(values, reduction)


def binary_rates(pred, target, *, threshold: float = 0.5, valid=None) -> dict[str, float]:
    r"""Pixel counts pooled over all images -> accuracy, sensitivity, specificity, precision, F1.

    The usual DRIVE report (pass the field of view as ``valid``). A rate whose
    denominator is 0 is reported as 0 except precision, which is 1 when nothing
    is predicted positive *and* nothing is positive.
    """
    p, t, v = _check_masks(pred, target, valid, threshold)
    tp = int((p & t & v).sum())
    fp = int((p & ~t & v).sum())
    fn = int((~p & t & v).sum())
    tn = int((~p & ~t & v).sum())
    total = tp + fp + fn + tn

    def div(a: int, b: int, empty: float = 0.0) -> float:
        return a / b if b else empty

    precision = div(tp, tp + fp, 1.0 if tp + fn == 0 else 0.0)
    sensitivity = div(tp, tp + fn)
    return {"accuracy": div(tp + tn, total), "sensitivity": sensitivity,
            "specificity": div(tn, tn + fp), "precision": precision,
            "f1": div(2 * tp, 2 * tp + fp + fn, 1.0 if total else 0.0)}


def roc_auc(scores, target, *, valid=None) -> float:
    r"""Area under the ROC curve of pixel scores, all (valid) pixels pooled.

    Computed exactly by the Mann-Whitney rank statistic with tied scores given
    their average rank: :math:`\mathrm{AUC} = (R_+ - n_+(n_+ + 1)/2) / (n_+ n_-)`.
    Returns 0.5 when either class is absent (no ranking to measure).
    """
    scores = _as_tensor(scores, "scores")
    if not scores.is_floating_point():
        scores = scores.double()
    t = binarize(target, 0.5, "target")
    if scores.shape != t.shape:
        raise ValueError(f"'scores' {tuple(scores.shape)} and 'target' {tuple(t.shape)} "
                         f"must have the same shape")
    if valid is not None:
        v = binarize(valid, 0.5, "valid").expand_as(t)
        scores, t = scores[v], t[v]
    scores, t = scores.flatten().double(), t.flatten()
    n_pos = int(t.sum())
    n_neg = t.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    first_rank = torch.cumsum(counts, 0) - counts + 1  # 1-based rank of each unique value
    avg_rank = first_rank.double() + (counts.double() - 1) / 2
    rank_sum = float(avg_rank[inverse][t].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


_CROSS = ndimage.generate_binary_structure(2, 1)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels of a 2-D mask: the mask minus its 4-connected erosion."""
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def _hausdorff_one(pred: np.ndarray, target: np.ndarray, percentile: float) -> float:
    if not pred.any() and not target.any():
        return 0.0
    if not pred.any() or not target.any():
        return float(math.hypot(*pred.shape))
    sp, st = _surface(pred), _surface(target)
    d_pt = ndimage.distance_transform_edt(~st)[sp]  # every pred surface pixel -> target surface
    d_tp = ndimage.distance_transform_edt(~sp)[st]
    return float(max(np.percentile(d_pt, percentile), np.percentile(d_tp, percentile)))


def hausdorff_distance(pred, target, *, percentile: float = 100.0, threshold: float = 0.5,
                       reduction: str = "mean") -> float | Tensor:
    r"""Symmetric Hausdorff distance between the boundaries of two masks, in pixels.

    With :math:`\partial P`, :math:`\partial G` the boundary pixels (a mask minus
    its 4-connected erosion, as in MedPy / MONAI) and
    :math:`d(x, S) = \min_{s \in S} \lVert x - s \rVert_2` (exact Euclidean
    distance transform, :func:`scipy.ndimage.distance_transform_edt`):

    .. math::
        \mathrm{HD}_q = \max\Big(\operatorname{pct}_q\{d(p, \partial G)\}_{p \in \partial P},
        \ \operatorname{pct}_q\{d(g, \partial P)\}_{g \in \partial G}\Big)

    ``percentile=100`` is the Hausdorff distance, 95 gives HD95 (:func:`hd95`,
    MONAI's definition: the larger of the two directed 95th percentiles, linear
    interpolation).

    Empty masks (defined, finite): both empty -> ``0``; exactly one empty ->
    the image diagonal :math:`\sqrt{H^2 + W^2}`, the largest distance possible
    inside the image.

    Args:
        pred, target: masks ``[H, W]`` or ``[..., H, W]``.
        percentile (float): in ``(0, 100]``. (default: :obj:`100`)
        threshold (float): probability threshold for a floating ``pred``.
        reduction (str): ``"mean"`` or ``"none"``.
    """
    _check_reduction(reduction, ("mean", "none"))
    if not 0 < percentile <= 100:
        raise ValueError(f"'percentile' must be in (0, 100] (got {percentile})")
    p, t, _ = _check_masks(pred, target, None, threshold)
    batch = p.shape[:-2]
    p_np = p.reshape(-1, *p.shape[-2:]).cpu().numpy()
    t_np = t.reshape(-1, *t.shape[-2:]).cpu().numpy()
    values = torch.tensor([_hausdorff_one(a, b, percentile) for a, b in zip(p_np, t_np,
                                                                             strict=True)],
                          dtype=torch.float64).reshape(batch)
    if reduction == "none":
        return values
    return _reduce(values, reduction)


def hd95(pred, target, *, threshold: float = 0.5, reduction: str = "mean") -> float | Tensor:
    """The 95th-percentile Hausdorff distance (see :func:`hausdorff_distance`)."""
    return hausdorff_distance(pred, target, percentile=95.0, threshold=threshold,
                              reduction=reduction)


# ------------------------------------------------------------------------- saliency
def _saliency_batch(pred, target) -> tuple[list[Tensor], list[Tensor]]:
    if isinstance(pred, (Tensor, np.ndarray)):
        pred_t = _as_tensor(pred, "pred")
        preds = [pred_t] if pred_t.dim() == 2 else list(pred_t.reshape(-1, *pred_t.shape[-2:]))
        target_t = _as_tensor(target, "target")
        targets = [target_t] if target_t.dim() == 2 else list(
            target_t.reshape(-1, *target_t.shape[-2:]))
    else:
        preds = [_as_tensor(x, "pred") for x in pred]
        targets = [_as_tensor(x, "target") for x in target]
    if len(preds) != len(targets):
        raise ValueError(f"got {len(preds)} predictions for {len(targets)} targets")
    for p, t in zip(preds, targets, strict=True):
        if p.shape != t.shape:
            raise ValueError(f"prediction {tuple(p.shape)} and target {tuple(t.shape)} differ "
                             f"in shape")
        if not p.is_floating_point():
            raise TypeError(f"saliency predictions must be floats in [0, 1] (got {p.dtype})")
    return preds, targets


def f_measure_curve(pred, target, *, num_thresholds: int = 256) -> tuple[Tensor, Tensor]:
    r"""Image-averaged precision and recall at ``num_thresholds`` thresholds (SOD protocol).

    Threshold :math:`k` is :math:`t_k = k / (T - 1)`, ``k = 0 .. T-1``; a pixel is
    positive when :math:`\text{pred} \ge t_k`. Per image,
    :math:`P_k = TP_k / (TP_k + FP_k)` (0 when nothing is positive) and
    :math:`R_k = TP_k / |G|` (0 for an empty ground truth); both are then
    averaged over images.

    Args:
        pred: saliency maps in ``[0, 1]``: ``[H, W]``, ``[B, H, W]`` or a sequence
            of ``[H_i, W_i]`` maps of different sizes.
        target: binary ground truths of the same shape(s).
        num_thresholds (int): ``T``. (default: :obj:`256`)

    Returns:
        (Tensor, Tensor): ``float64 [T]`` precision and recall.
    """
    if num_thresholds < 2:
        raise ValueError(f"'num_thresholds' must be >= 2 (got {num_thresholds})")
    preds, targets = _saliency_batch(pred, target)
    if not preds:
        raise ValueError("'pred' holds no images")
    levels = num_thresholds
    precision = torch.zeros(levels, dtype=torch.float64)
    recall = torch.zeros(levels, dtype=torch.float64)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(preds):  # stack equal-size maps, vectorise within each group
        groups.setdefault(tuple(p.shape), []).append(i)
    for indices in groups.values():
        p = torch.stack([preds[i] for i in indices]).double().flatten(1)
        t = torch.stack([binarize(targets[i], 0.5, "target") for i in indices]).flatten(1)
        q = (p.clamp(0, 1) * (levels - 1) + 1e-6).floor().long()  # q >= k  <=>  pred >= t_k
        offset = torch.arange(len(indices)).view(-1, 1) * levels
        hist_fg = torch.bincount((q + offset)[t], minlength=len(indices) * levels)
        hist_bg = torch.bincount((q + offset)[~t], minlength=len(indices) * levels)
        hist_fg = hist_fg.view(-1, levels).double()
        hist_bg = hist_bg.view(-1, levels).double()
        tp = hist_fg.flip(1).cumsum(1).flip(1)  # [n, T]: fg pixels with q >= k
        fp = hist_bg.flip(1).cumsum(1).flip(1)
        precision += _ratio(tp, tp + fp, 0.0).sum(0)
        recall += _ratio(tp, t.sum(1, keepdim=True).expand_as(tp), 0.0).sum(0)
    return precision / len(preds), recall / len(preds)


def max_f_measure(pred, target, *, beta2: float = 0.3, num_thresholds: int = 256) -> float:
    r"""Maximum F-measure over thresholds of the image-averaged PR curve (SOD protocol).

    .. math::
        \max_k F_k, \quad
        F_k = \frac{(1 + \beta^2)\, \bar P_k \bar R_k}{\beta^2 \bar P_k + \bar R_k}

    with :math:`\bar P_k, \bar R_k` from :func:`f_measure_curve` (:math:`F_k = 0`
    where both are 0) and :math:`\beta^2 = 0.3` by default.
    """
    if beta2 <= 0:
        raise ValueError(f"'beta2' must be > 0 (got {beta2})")
    precision, recall = f_measure_curve(pred, target, num_thresholds=num_thresholds)
    f = _ratio((1 + beta2) * precision * recall, beta2 * precision + recall, 0.0)
    return float(f.max())


def mean_absolute_error(pred, target) -> float:
    r"""Mean over images of the mean absolute difference between a saliency map in
    ``[0, 1]`` and its binary ground truth. Accepts the inputs of :func:`f_measure_curve`.
    """
    preds, targets = _saliency_batch(pred, target)
    if not preds:
        raise ValueError("'pred' holds no images")
    errors = [(p.double().clamp(0, 1) - binarize(t, 0.5, "target").double()).abs().mean()
              for p, t in zip(preds, targets, strict=True)]
    return float(torch.stack(errors).mean())


# ---------------------------------------------------------------------------- roads
def road_iou(pred, target, *, threshold: float = 0.5, valid=None) -> float:
    """Road IoU: :func:`binary_iou` of the road class with all pixels of all tiles pooled."""
    return binary_iou(pred, target, threshold=threshold, valid=valid, reduction="global")


_STEPS = ((0, 1, 1.0), (1, 0, 1.0), (1, 1, math.sqrt(2.0)), (1, -1, math.sqrt(2.0)))


def _pixel_graph(mask: np.ndarray):
    """8-connected graph of the road pixels of ``mask`` ``[h, w]`` (all h*w nodes)."""
    h, w = mask.shape
    ids = np.arange(h * w).reshape(h, w)
    rows, cols, weights = [], [], []
    for dy, dx, length in _STEPS:
        src_rows = slice(0, h - dy)
        dst_rows = slice(dy, h)
        src_cols = slice(max(0, -dx), w - max(0, dx))
        dst_cols = slice(max(0, dx), w - max(0, -dx))
        both = mask[src_rows, src_cols] & mask[dst_rows, dst_cols]
        rows.append(ids[src_rows, src_cols][both])
        cols.append(ids[dst_rows, dst_cols][both])
        weights.append(np.full(int(both.sum()), length))
    r, c, wt = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    return coo_matrix((wt, (r, c)), shape=(h * w, h * w)).tocsr()


def _downsample(mask: np.ndarray, factor: int) -> np.ndarray:
    """Block max-pooling by ``factor`` (a block is road if any pixel is: keeps thin roads)."""
    if factor == 1:
        return mask
    h, w = mask.shape
    ph, pw = -h % factor, -w % factor
    mask = np.pad(mask, ((0, ph), (0, pw)))
    return mask.reshape((h + ph) // factor, factor, (w + pw) // factor, factor).any(axis=(1, 3))


def _path_similarity(source: np.ndarray, other: np.ndarray, num_sources: int,
                     targets_per_source: int, snap: float, rng: np.random.Generator
                     ) -> float | None:
    """Mean pair score of paths sampled in ``source`` and re-measured in ``other``.

    ``None`` when ``source`` has no pair of connected road pixels.
    """
    nodes = np.flatnonzero(source)
    if nodes.size < 2:
        return None
    sources = rng.choice(nodes, size=min(num_sources, nodes.size), replace=False)
    dist_src = dijkstra(_pixel_graph(source), directed=False, indices=sources)
    pairs_s, pairs_t, lengths = [], [], []
    for row, s in enumerate(sources):
        reachable = np.flatnonzero(np.isfinite(dist_src[row]))
        reachable = reachable[reachable != s]
        if reachable.size == 0:
            continue
        chosen = rng.choice(reachable, size=min(targets_per_source, reachable.size), replace=False)
        pairs_s.append(np.full(chosen.size, row))
        pairs_t.append(chosen)
        lengths.append(dist_src[row, chosen])
    if not lengths:
        return None
    rows_idx, targets, l_src = np.concatenate(pairs_s), np.concatenate(pairs_t), \
        np.concatenate(lengths)
    if not other.any():
        return 0.0
    # snap every endpoint to the nearest road pixel of ``other`` (within ``snap``)
    gap, (ny, nx) = ndimage.distance_transform_edt(~other, return_indices=True)
    gap, nearest = gap.ravel(), (ny * other.shape[1] + nx).ravel()
    src_nodes, tgt_nodes = sources[rows_idx], targets
    ok = (gap[src_nodes] <= snap) & (gap[tgt_nodes] <= snap)
    scores = np.zeros(l_src.size)
    if ok.any():
        snapped_src, snapped_tgt = nearest[src_nodes[ok]], nearest[tgt_nodes[ok]]
        unique_src, which = np.unique(snapped_src, return_inverse=True)
        dist_other = dijkstra(_pixel_graph(other), directed=False, indices=unique_src)
        l_other = dist_other[which, snapped_tgt]
        found = np.isfinite(l_other)
        pair = np.zeros(l_other.size)
        l_ref = l_src[ok]
        pair[found] = 1.0 - np.minimum(1.0, np.abs(l_ref[found] - l_other[found]) / l_ref[found])
        scores[ok] = pair
    return float(scores.mean())


def _topology_one(pred: np.ndarray, target: np.ndarray, num_sources: int,
                  targets_per_source: int, max_size: int, snap_radius: float,
                  rng: np.random.Generator) -> float:
    factor = max(1, math.ceil(max(target.shape) / max_size))
    pred, target = _downsample(pred, factor), _downsample(target, factor)
    snap = snap_radius / factor
    forward = _path_similarity(target, pred, num_sources, targets_per_source, snap, rng)
    backward = _path_similarity(pred, target, num_sources, targets_per_source, snap, rng)
    halves = [h for h in (forward, backward) if h is not None]
    if not halves:
        return 1.0
    if len(halves) == 1:
        return halves[0]
    a, b = halves
    return 2 * a * b / (a + b) if a + b > 0 else 0.0


def topology_score(pred, target, *, threshold: float = 0.5, num_sources: int = 16,
                   targets_per_source: int = 8, max_size: int = 128, snap_radius: float = 4.0,
                   seed: int = 0, reduction: str = "mean") -> float | Tensor:
    r"""An APLS-like path-length similarity of road masks (a simpler topology score).

    This is *not* the official APLS of SpaceNet, which compares vectorised road
    graphs; it applies the same idea directly to the pixel graphs of the masks:

    1. masks larger than ``max_size`` are max-pooled by the integer factor
       :math:`f = \lceil \max(H, W) / \text{max\_size} \rceil` (a block is road
       if any of its pixels is, so thin roads survive); road pixels are joined
       8-connectedly with edge lengths 1 and :math:`\sqrt 2`;
    2. from the ground truth, ``num_sources`` road pixels are drawn (seeded) and,
       for each, ``targets_per_source`` road pixels reachable from it; their
       geodesic path length :math:`L_{gt}` is computed with Dijkstra
       (:func:`scipy.sparse.csgraph.dijkstra`);
    3. both endpoints are snapped to the nearest predicted road pixel within
       ``snap_radius`` pixels (``snap_radius / f`` cells of the pooled grid)
       and the path length :math:`L_{pred}` is measured in the predicted graph;
    4. a pair scores :math:`1 - \min(1, |L_{gt} - L_{pred}| / L_{gt})`, or 0 when
       an endpoint cannot be snapped or no predicted path exists; the half-score
       :math:`C_{gt \to pred}` is the mean over pairs;
    5. symmetrically :math:`C_{pred \to gt}` samples pairs in the prediction and
       measures them in the ground truth (this penalises spurious roads);
       the score is their harmonic mean, as in APLS.

    Degenerate cases: a mask without two connected road pixels contributes no
    half-score; when neither mask does (e.g. both empty) the score is 1, when only
    one half exists it is the score. A road mask against an empty one scores 0.
    Use :func:`road_iou` for pixel agreement; this measures connectivity.

    Args:
        pred, target: road masks ``[H, W]`` or ``[..., H, W]``.
        threshold (float): probability threshold for a floating ``pred``.
        num_sources (int): sampled source pixels per half. (default: :obj:`16`)
        targets_per_source (int): sampled targets per source. (default: :obj:`8`)
        max_size (int): largest side of the graph grid. (default: :obj:`128`)
        snap_radius (float): snapping radius in pixels. (default: :obj:`4.0`)
        seed (int): seed of the sampling; image ``i`` of a batch uses
            ``numpy.random.default_rng([seed, i])``. (default: :obj:`0`)
        reduction (str): ``"mean"`` or ``"none"``.

    Returns:
        float or Tensor: the score in ``[0, 1]`` (1 for a perfect prediction).
    """
    _check_reduction(reduction, ("mean", "none"))
    for name, value in (("num_sources", num_sources), ("targets_per_source", targets_per_source),
                        ("max_size", max_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"'{name}' must be an int >= 1 (got {value!r})")
    if snap_radius < 0:
        raise ValueError(f"'snap_radius' must be >= 0 (got {snap_radius})")
    p, t, _ = _check_masks(pred, target, None, threshold)
    batch = p.shape[:-2]
    p_np = p.reshape(-1, *p.shape[-2:]).cpu().numpy()
    t_np = t.reshape(-1, *t.shape[-2:]).cpu().numpy()
    values = torch.tensor(
        [_topology_one(a, b, num_sources, targets_per_source, max_size, snap_radius,
                       np.random.default_rng([seed, i]))
         for i, (a, b) in enumerate(zip(p_np, t_np, strict=True))],
        dtype=torch.float64).reshape(batch)
    return values if reduction == "none" else _reduce(values, reduction)


# ---------------------------------------------------------------------------- faces
def identification_accuracy(scores: Tensor, labels: Tensor, *, gallery: Tensor | None = None,
                            gallery_labels: Tensor | None = None, topk: int = 1) -> float:
    r"""Closed-set identification accuracy (rank-``topk``).

    * without a gallery, ``scores`` are class logits ``[N, K]`` and an item is
      correct when its label is among the ``topk`` highest logits;
    * with ``gallery`` embeddings ``[M, D]`` and ``gallery_labels`` ``[M]``,
      ``scores`` are probe embeddings ``[N, D]``; identities are ranked by their
      best cosine similarity to the probe (nearest neighbour per identity) and
      a probe is correct when its label is among the ``topk`` best identities.

    Returns 0 for an empty input.
    """
    scores, labels = _as_tensor(scores, "scores"), _as_tensor(labels, "labels").long()
    if scores.dim() != 2 or labels.dim() != 1 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"'scores' must be [N, K] and 'labels' [N] (got {tuple(scores.shape)} "
                         f"and {tuple(labels.shape)})")
    if isinstance(topk, bool) or not isinstance(topk, int) or topk < 1:
        raise ValueError(f"'topk' must be an int >= 1 (got {topk!r})")
    if labels.numel() == 0:
        return 0.0
    if gallery is None:
        if gallery_labels is not None:
            raise ValueError("'gallery_labels' given without 'gallery'")
        ranked = scores.topk(min(topk, scores.shape[1]), dim=1).indices
    else:
        if gallery_labels is None:
            raise ValueError("'gallery' needs 'gallery_labels'")
        gallery = _as_tensor(gallery, "gallery")
        gallery_labels = _as_tensor(gallery_labels, "gallery_labels").long()
        if gallery.dim() != 2 or gallery.shape[1] != scores.shape[1] \
                or gallery_labels.shape != gallery.shape[:1]:
            raise ValueError(f"'gallery' must be [M, {scores.shape[1]}] with 'gallery_labels' "
                             f"[M] (got {tuple(gallery.shape)}, {tuple(gallery_labels.shape)})")
        sims = torch.nn.functional.normalize(scores.double(), dim=1) @ \
            torch.nn.functional.normalize(gallery.double(), dim=1).T
        identities, inverse = torch.unique(gallery_labels, return_inverse=True)
        per_identity = torch.full((scores.shape[0], identities.numel()), -math.inf,
                                  dtype=torch.float64)
        per_identity.scatter_reduce_(1, inverse.expand_as(sims), sims, reduce="amax")
        ranked = identities[per_identity.topk(min(topk, identities.numel()), dim=1).indices]
    return float((ranked == labels.view(-1, 1)).any(1).double().mean())


def pair_cosine_similarity(embeddings_a: Tensor, embeddings_b: Tensor) -> Tensor:
    """``float64 [P]`` cosine similarity of row ``i`` of ``a`` with row ``i`` of ``b``."""
    a, b = _as_tensor(embeddings_a, "embeddings_a"), _as_tensor(embeddings_b, "embeddings_b")
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"embeddings must both be [P, D] (got {tuple(a.shape)} and "
                         f"{tuple(b.shape)})")
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1, eps=1e-12)


def best_threshold(similarity: Tensor, same: Tensor) -> float:
    r"""The threshold :math:`\tau` maximising the accuracy of "same iff similarity > tau".

    Candidates are midpoints between consecutive distinct similarities and
    values just outside their range; ties keep the lowest threshold.
    """
    s = similarity.double().flatten()
    same = same.bool().flatten()
    values = torch.unique(s)
    candidates = torch.cat([values[:1] - 1.0, (values[:-1] + values[1:]) / 2, values[-1:] + 1.0])
    genuine, impostor = s[same].sort().values, s[~same].sort().values
    true_accept = genuine.numel() - torch.searchsorted(genuine, candidates, right=True)
    true_reject = torch.searchsorted(impostor, candidates, right=True)
    return float(candidates[(true_accept + true_reject).argmax()])


def verification_folds(embeddings_a: Tensor, embeddings_b: Tensor, same: Tensor, *,
                       num_folds: int = 10, seed: int = 0) -> dict[str, Tensor]:
    r"""k-fold cross-validated verification (the LFW protocol) on cosine similarity.

    The pairs are dealt into ``k = min(num_folds, P)`` folds, stratified
    (genuine and impostor pairs each shuffled with ``seed`` and dealt round-robin,
    so every fold has both kinds when possible). For each fold the threshold is
    chosen by :func:`best_threshold` on the other folds and the accuracy of
    "same iff cosine > threshold" is measured on the held-out fold.

    Returns:
        dict: ``"accuracy"`` and ``"threshold"``, ``float64 [k]`` per fold.
    """
    sims = pair_cosine_similarity(embeddings_a, embeddings_b)
    same = _as_tensor(same, "same").bool().flatten()
    if same.numel() != sims.numel():
        raise ValueError(f"'same' has {same.numel()} entries for {sims.numel()} pairs")
    if sims.numel() < 2:
        raise ValueError(f"verification needs at least 2 pairs (got {sims.numel()})")
    if isinstance(num_folds, bool) or not isinstance(num_folds, int) or num_folds < 2:
        raise ValueError(f"'num_folds' must be an int >= 2 (got {num_folds!r})")
    k = min(num_folds, sims.numel())
    generator = torch.Generator().manual_seed(int(seed))
    genuine, impostor = same.nonzero().flatten(), (~same).nonzero().flatten()
    order = torch.cat([genuine[torch.randperm(genuine.numel(), generator=generator)],
                       impostor[torch.randperm(impostor.numel(), generator=generator)]])
    fold = torch.empty_like(same, dtype=torch.long)
    fold[order] = torch.arange(order.numel()) % k
    accuracy = torch.zeros(k, dtype=torch.float64)
    threshold = torch.zeros(k, dtype=torch.float64)
    for i in range(k):  # k <= 10 folds: the loop is over folds, not over data
        held_out = fold == i
        tau = best_threshold(sims[~held_out], same[~held_out])
        threshold[i] = tau
        accuracy[i] = ((sims[held_out] > tau) == same[held_out]).double().mean()
    return {"accuracy": accuracy, "threshold": threshold}


def verification_accuracy(embeddings_a: Tensor, embeddings_b: Tensor, same: Tensor, *,
                          num_folds: int = 10, seed: int = 0) -> float:
    """Mean held-out accuracy of :func:`verification_folds` (the LFW number)."""
    folds = verification_folds(embeddings_a, embeddings_b, same, num_folds=num_folds, seed=seed)
    return float(folds["accuracy"].mean())
