"""ConfusionMatrix: hand-computed values, ignore index, logits, accumulation, DDP sum."""
import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from benchmarks.common.metrics import ConfusionMatrix, class_ids

TARGET = torch.tensor([[0, 0, 1, 1],
                       [0, 0, 1, 1],
                       [2, 2, 3, 3],
                       [2, 2, 3, 3]])
PRED = torch.tensor([[0, 1, 1, 1],
                     [0, 0, 1, 1],
                     [2, 2, 2, 3],
                     [2, 2, 3, 3]])


def test_four_by_four_by_hand():
    cm = ConfusionMatrix(4).update(PRED[None], TARGET[None])
    # rows = target, columns = prediction
    assert cm.matrix.tolist() == [[3, 1, 0, 0], [0, 4, 0, 0], [0, 0, 4, 0], [0, 0, 1, 3]]
    # IoU_0 = 3 / (4 + 3 - 3), IoU_1 = 4 / (4 + 5 - 4), IoU_2 = 4 / 5, IoU_3 = 3 / 4
    assert cm.iou_per_class().tolist() == pytest.approx([0.75, 0.8, 0.8, 0.75])
    assert cm.miou() == pytest.approx(0.775)
    assert cm.pixel_accuracy() == pytest.approx(14 / 16)
    assert cm.mean_accuracy() == pytest.approx((0.75 + 1 + 1 + 0.75) / 4)
    summary = cm.summary(["a", "b", "c", "d"])
    assert summary["miou"] == pytest.approx(0.775)
    assert summary["iou_per_class"]["b"] == pytest.approx(0.8)


def test_ignore_index_skips_pixels():
    target = TARGET.clone()
    target[0, 1] = 255  # the one wrong class-0 pixel becomes unlabelled
    cm = ConfusionMatrix(4, ignore_index=255).update(PRED, target)
    assert int(cm.matrix.sum()) == 15
    assert cm.iou_per_class().tolist() == pytest.approx([1.0, 1.0, 0.8, 0.75])
    assert cm.pixel_accuracy() == pytest.approx(14 / 15)
    # without ignore_index the 255 is an error that names the value
    with pytest.raises(ValueError, match="255"):
        ConfusionMatrix(4).update(PRED, target)


def test_logits_are_argmaxed():
    logits = torch.nn.functional.one_hot(PRED, 4).permute(2, 0, 1)[None].float() * 3.0
    a = ConfusionMatrix(4).update(logits, TARGET[None])
    b = ConfusionMatrix(4).update(PRED[None], TARGET[None])
    assert torch.equal(a.matrix, b.matrix)
    with pytest.raises(ValueError, match="logits"):
        ConfusionMatrix(5).update(logits, TARGET[None])
    with pytest.raises(TypeError, match="target"):
        ConfusionMatrix(4).update(PRED, TARGET.float())


@settings(max_examples=40, deadline=None)
@given(arrays(np.int8, st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 5),
                                 st.integers(1, 7)), elements=st.integers(-3, 3)))
def test_class_ids_is_numpys_first_argmax(scores):
    # small integer scores make ties common: the first maximal class wins, as numpy's
    logits = torch.from_numpy(scores.astype(np.float32))
    assert class_ids(logits).tolist() == np.argmax(scores, axis=1).tolist()
    # and the strided layout of an upsampled batch gives the same answer
    strided = logits.contiguous(memory_format=torch.channels_last)
    assert torch.equal(class_ids(strided), class_ids(logits))


def test_class_ids_rejects_non_batched_input():
    with pytest.raises(ValueError, match="logits"):
        class_ids(torch.zeros(4))
    with pytest.raises(TypeError, match="logits"):
        class_ids([[0.0, 1.0]])


def test_absent_class_and_empty_matrix_are_finite():
    cm = ConfusionMatrix(5).update(PRED, TARGET)  # class 4 never occurs
    assert cm.present.tolist() == [True, True, True, True, False]
    assert cm.iou_per_class()[4] == 0
    assert cm.miou() == pytest.approx(0.775)  # absent class not averaged in
    empty = ConfusionMatrix(3, ignore_index=0).update(torch.zeros(2, 2, dtype=torch.long),
                                                      torch.zeros(2, 2, dtype=torch.long))
    assert (empty.miou(), empty.pixel_accuracy(), empty.mean_accuracy()) == (0.0, 0.0, 0.0)
    assert torch.isfinite(empty.iou_per_class()).all()
    with pytest.raises(ValueError, match="pred"):
        ConfusionMatrix(2).update(torch.tensor([2]), torch.tensor([0]))


def _reference(pred: np.ndarray, target: np.ndarray, c: int) -> np.ndarray:
    m = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(target.ravel(), pred.ravel(), strict=True):
        m[t, p] += 1
    return m


@settings(max_examples=30, deadline=None)
@given(arrays(np.int64, (3, 4, 5), elements=st.integers(0, 3)),
       arrays(np.int64, (3, 4, 5), elements=st.integers(0, 3)),
       st.integers(1, 2))
def test_matches_reference_and_batches_accumulate(pred, target, cut):
    whole = ConfusionMatrix(4).update(torch.from_numpy(pred), torch.from_numpy(target))
    assert whole.matrix.numpy().tolist() == _reference(pred, target, 4).tolist()
    split = ConfusionMatrix(4)
    split.update(torch.from_numpy(pred[:cut]), torch.from_numpy(target[:cut]))
    split.update(torch.from_numpy(pred[cut:]), torch.from_numpy(target[cut:]))
    assert torch.equal(split.matrix, whole.matrix)
    m = whole.matrix.double()
    union = m.sum(0) + m.sum(1) - m.diag()
    present = union > 0
    expected = (m.diag()[present] / union[present]).mean().item()
    assert whole.miou() == pytest.approx(expected)


def test_all_reduce_sums_over_ranks(tmp_path, monkeypatch):
    full = ConfusionMatrix(4).update(PRED, TARGET).matrix
    # without an initialised process group it is a no-op
    assert torch.equal(ConfusionMatrix(4).update(PRED, TARGET).all_reduce().matrix, full)
    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        # a real one-rank gloo group: the sum over one rank is the matrix itself
        assert torch.equal(ConfusionMatrix(4).update(PRED, TARGET).all_reduce().matrix, full)
        # two ranks, each holding half of the rows: simulate the other rank's
        # contribution inside the collective and check the matrices are summed
        top = ConfusionMatrix(4).update(PRED[:2], TARGET[:2])
        other = ConfusionMatrix(4).update(PRED[2:], TARGET[2:]).matrix
        real_all_reduce = dist.all_reduce

        def two_rank_all_reduce(tensor, op=dist.ReduceOp.SUM, **kwargs):
            assert op == dist.ReduceOp.SUM
            real_all_reduce(tensor, op=op, **kwargs)
            tensor += other

        monkeypatch.setattr(dist, "all_reduce", two_rank_all_reduce)
        assert torch.equal(top.all_reduce().matrix, full)
    finally:
        dist.destroy_process_group()
