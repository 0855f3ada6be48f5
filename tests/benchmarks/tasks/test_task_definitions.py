"""benchmarks.common.dense_prediction: schedules, subsets, crops, models, loss, metrics,
FLOPs."""
import dataclasses
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from benchmarks.common.dense_prediction import (
    TASKS,
    RandomCrop,
    TaskSchedule,
    build_model,
    compute_loss,
    evaluate,
    get_task,
    is_graph_model,
    load_task_data,
    model_flops,
    model_name,
    resolve_schedule,
    stage_modules,
    subset_indices,
)
from pyg_hgconv.nn.models import SegmentationOutput


@given(st.integers(1, 400), st.one_of(st.none(), st.integers(1, 500)))
@settings(max_examples=60, deadline=None)
def test_subset_indices_are_evenly_spaced_and_keep_both_ends(n, k):
    idx = subset_indices(n, k)
    assert idx == sorted(set(idx)) and all(0 <= i < n for i in idx)
    assert len(idx) == (n if k is None else min(n, k))
    if len(idx) > 1:
        assert idx[0] == 0 and idx[-1] == n - 1
        gaps = [b - a for a, b in itertools.pairwise(idx)]
        assert max(gaps) - min(gaps) <= 1  # evenly spaced up to rounding


@given(st.integers(16, 40), st.integers(16, 40), st.integers(0, 1000))
@settings(max_examples=25, deadline=None)
def test_random_crop_keeps_image_and_targets_aligned(h, w, seed):
    torch.manual_seed(seed)
    crop = RandomCrop((16, 16))
    image = torch.arange(3 * h * w, dtype=torch.float32).view(3, h, w)
    mask = image[0].long()  # the target equals channel 0 of the image
    out_image, out_mask, extra = crop((image, mask, torch.tensor(7)))
    assert out_image.shape == (3, 16, 16) and out_mask.shape == (16, 16)
    assert torch.equal(out_image[0].long(), out_mask) and int(extra) == 7
    top, left = divmod(int(out_mask[0, 0]), w)
    assert torch.equal(out_image, image[:, top:top + 16, left:left + 16])


def test_schedule_validation_and_train_config():
    sched = resolve_schedule("roads", "default")
    config = sched.train_config(3, progress=False)
    assert (config.epochs, config.batch_size, config.seed, config.drop_last) == (
        sched.epochs, sched.batch_size, 3, True)
    assert config.eval_every == sched.epochs  # evaluated after the last epoch only
    # the optimiser's warm-up and clipping reach the training loop
    tuned = sched.replace(warmup_iters=7, grad_clip=2.5).train_config(0)
    assert (tuned.warmup_iters, tuned.grad_clip) == (7, 2.5)
    with pytest.raises(ValueError, match="warmup_iters"):
        sched.replace(warmup_iters=-1)
    with pytest.raises(ValueError, match="grad_clip"):
        sched.replace(grad_clip=0.0)
    with pytest.raises(ValueError, match="input_size"):
        TaskSchedule(input_size=(8, 8), epochs=1, batch_size=1)
    with pytest.raises(ValueError, match="train_crop"):
        TaskSchedule(input_size=(32, 32), epochs=1, batch_size=1, train_crop=(48, 48))
    with pytest.raises(ValueError, match="hg_ratio"):
        TaskSchedule(input_size=(32, 32), epochs=1, batch_size=1, hg_ratio=2.0)
    with pytest.raises(ValueError, match="epochs"):
        TaskSchedule(input_size=(32, 32), epochs=0, batch_size=1)
    with pytest.raises(ValueError, match="task"):
        get_task("detection")
    with pytest.raises(ValueError, match="schedule"):
        resolve_schedule("roads", "long")


@pytest.mark.parametrize("task", list(TASKS))
def test_models_of_every_task(task):
    spec = get_task(task)
    sched = spec.schedules["quick"]
    torch.manual_seed(0)
    grid = build_model(task, "grid", "quick")
    hg = build_model(task, "hg", "quick")
    assert type(grid).__name__ == spec.grid_model and type(hg).__name__ == spec.hg_model
    assert not is_graph_model(grid) and is_graph_model(hg)
    pool = next(m for m in hg.modules() if type(m).__name__ == "ImageToGroupGraph")
    assert pool.ratio == sched.hg_ratio and pool.sampler == spec.hg_options["sampler"]
    assert pool.num_iterations == spec.hg_options["num_iterations"]
    # every stage module named by stage_modules exists in the model
    for model in (grid, hg):
        names = dict(model.named_modules())
        assert stage_modules(model) and all(n in names for n in stage_modules(model))
    with pytest.raises(ValueError, match="grid models"):
        build_model(task, "grid", "quick", sampler="random")
    assert model_name(task, "grid") == spec.model_label
    assert model_name(task, "hg", "uncertainty").endswith("-Attn (uncertainty)")


def test_active_focus_models():
    roads = build_model("roads", "hg", "quick", attention="object")
    assert roads.attention == "object" and roads.focus_class == 0
    assert stage_modules(roads)[-1] == "aux_head"  # the coarse head counts for the HG stage
    with pytest.raises(ValueError, match="focus class"):
        build_model("segmentation", "hg", "quick", attention="object")
    seg = build_model("segmentation", "hg", "quick", attention="object", focus_class=3)
    assert seg.focus_class == 3


def test_compute_loss_is_the_output_contract_loss():
    spec = get_task("segmentation")
    torch.manual_seed(0)
    model = build_model(spec, "grid", "quick").train()
    images = torch.randn(2, 3, 32, 48)
    target = torch.randint(0, 12, (2, 32, 48))  # 11 = ignore
    torch.manual_seed(1)
    loss, logs = compute_loss(spec)(model, (images, target))
    torch.manual_seed(1)
    expected, expected_logs = model(images).loss(target, ignore_index=11)
    torch.testing.assert_close(loss, expected)
    assert "loss" not in logs and logs["aux"] == expected_logs["aux"]


class _Oracle(nn.Module):
    """Returns the one-hot logits of the next validation targets (in order)."""

    def __init__(self, targets, num_classes):
        super().__init__()
        self.targets, self.num_classes, self.pos = targets, num_classes, 0
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        t = self.targets[self.pos:self.pos + x.shape[0]].clamp_max(self.num_classes - 1)
        self.pos += x.shape[0]
        logits = torch.nn.functional.one_hot(t, self.num_classes).permute(0, 3, 1, 2).float()
        return SegmentationOutput(out=logits * 10)


def test_evaluate_scores_a_perfect_prediction_as_perfect(tmp_path):
    """On generated data (CamVid missing under tmp_path) the targets have the
    input size, so an oracle gets mIoU = pixel accuracy = 1."""
    data = load_task_data("segmentation", tmp_path, "quick")
    assert data.dataset == "HeterogeneousScenes" and "CamVid was not found" in data.note
    metrics = evaluate(_Oracle(data.val_targets, 11), data, batch_size=1)
    assert metrics["miou"] == pytest.approx(1.0) and metrics["pixel_accuracy"] == 1.0
    assert "groups_per_image" not in metrics
    wrong = evaluate(_Oracle((data.val_targets + 1) % 11, 11), data, batch_size=2)
    assert wrong["pixel_accuracy"] < 0.05


def test_generated_fallback_is_bounded_by_the_schedules_subsets(tmp_path):
    """Without CamVid the generated splits are no larger than the subsets the
    schedule takes of CamVid (so the fallback run trains on as many images)."""
    from benchmarks.common.dense_prediction import resolve_schedule

    base = resolve_schedule("segmentation", "quick")
    capped = base.replace(fallback_items=(12, 6), max_train_items=5, max_val_items=3)
    data = load_task_data("segmentation", tmp_path, capped)
    assert (len(data.train), len(data.val), len(data.val_targets)) == (5, 3, 3)
    assert data.split["train"] == 5 and data.split["val"] == 3
    uncapped = base.replace(fallback_items=(4, 2), max_train_items=None, max_val_items=None)
    data = load_task_data("segmentation", tmp_path, uncapped)
    assert (len(data.train), len(data.val)) == (4, 2)


@pytest.mark.data
def test_real_splits_and_original_resolution_targets(data_root):
    roads = load_task_data("roads", data_root, "quick")
    assert roads.dataset == "RoadTiles" and roads.note is None
    assert roads.val_targets.shape == (2, 400, 400)  # scored at the tiles' resolution
    assert len(roads.split["train_files"]) == 4 and roads.split["seed"] == 0
    image, mask = roads.train[0]
    assert image.shape == (3, 32, 32) and mask.dtype == torch.float32  # the training crop
    saliency = load_task_data("saliency", data_root, "quick")
    assert isinstance(saliency.val_targets, list)  # ECSSD images differ in size
    assert {t.shape for t in saliency.val_targets} != {(48, 48)}
    summary = saliency.split_summary()
    assert "train_files" not in summary and len(summary["files_sha1"]) == 12


def test_flops_hg_stage_against_grid_stage(tmp_path):
    data = load_task_data("segmentation", tmp_path, "quick")
    torch.manual_seed(0)
    grid = model_flops(build_model("segmentation", "grid", "quick"), data)
    hg = model_flops(build_model("segmentation", "hg", "quick"), data)
    assert grid["images_counted"] == 1  # a grid model costs the same on every image
    assert hg["images_counted"] == len(data.val)
    assert 0 < hg["stage_gflops"] < 0.5 * grid["stage_gflops"]
    assert hg["gflops_per_image"] < grid["gflops_per_image"]
    assert hg["flops_components"]["clustering"] > 0 == grid["flops_components"]["clustering"]
    total = sum(hg["flops_components"].values())
    assert total == pytest.approx(hg["gflops_per_image"])


def test_flops_of_a_subset_average_the_images_of_that_subset(tmp_path):
    from torch.utils.data import Subset

    base = resolve_schedule("segmentation", "quick").replace(fallback_items=(4, 5),
                                                             max_val_items=None)
    data = load_task_data("segmentation", tmp_path, base)
    sub = load_task_data("segmentation", tmp_path, base.replace(flops_items=2))
    torch.manual_seed(0)
    model = build_model("segmentation", "hg", "quick")
    counted = model_flops(model, sub)
    assert counted["images_counted"] == 2
    # evenly spaced: the first and the last of the 5 images, each counted alone
    alone = [model_flops(model, dataclasses.replace(data, val=Subset(data.val, [i])))
             ["gflops_per_image"] for i in (0, 4)]
    assert counted["gflops_per_image"] == pytest.approx(sum(alone) / 2, rel=1e-6)
    grid = model_flops(build_model("segmentation", "grid", "quick"), sub)
    assert grid["images_counted"] == 1
    with pytest.raises(ValueError, match="flops_items"):
        base.replace(flops_items=0)


def test_schedules_are_frozen_and_hashable():
    sched = resolve_schedule("saliency", "default")
    assert hash(sched) == hash(dataclasses.replace(sched))  # the data cache key
    shorter = sched.replace(epochs=sched.epochs + 1)
    assert shorter.epochs == sched.epochs + 1 and shorter != sched
    with pytest.raises(dataclasses.FrozenInstanceError):
        sched.epochs = 1


def test_roads_default_gives_the_hg_module_the_papers_groups_at_the_papers_ratio():
    """The paper trains on 256-px crops at ratio 1/16 of the stride-4 map: 256
    groups per crop, a quarter of stage 4's pixels. The default keeps the ratio,
    evaluates tiles of the paper's crop size and trains on crops with a quarter
    of their groups (not the 16 of 64-px crops)."""
    sched = resolve_schedule("roads", "default")
    assert sched.hg_ratio == 1 / 16
    torch.manual_seed(0)
    model = build_model("roads", "hg", "default").eval()
    groups = {}
    for name, (h, w) in (("train", sched.train_crop or sched.input_size),
                         ("eval", sched.input_size)):
        with torch.no_grad():
            groups[name] = model(torch.rand(1, 3, h, w)).graphs[0].num_nodes
    paper_groups = (256 // 4) ** 2 // 16
    assert groups["eval"] >= paper_groups and groups["train"] >= paper_groups // 4
