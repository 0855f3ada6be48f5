"""Several seeds per model: averaging, paired wins and the mean ± std text."""
import dataclasses
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.common.dense_prediction import TASKS, TaskSchedule
from benchmarks.common.summary import format_pm
from benchmarks.tasks import goal_rows, metric_text, paired_wins, seed_means

SEG = TASKS["segmentation"]


def record(model, variant, seed, miou, **extra):
    return {"model": model, "variant": variant, "seed": seed, "miou": miou,
            "pixel_accuracy": 0.5, "mean_accuracy": None, "gflops_per_image": 1.0 + seed,
            "stage_gflops": 0.4 if variant == "grid" else 0.1, "params": 10, **extra}


@given(st.lists(st.floats(0, 1), min_size=1, max_size=5),
       st.lists(st.floats(0, 1), min_size=1, max_size=5))
@settings(max_examples=50, deadline=None)
def test_seed_means_equal_the_statistics_module(grid, hg):
    per_seed = [record("G", "grid", s, v) for s, v in enumerate(grid)]
    per_seed += [record("H", "hg", s, v) for s, v in enumerate(hg)]
    rows = {r["model"]: r for r in seed_means(SEG, per_seed)}
    for name, values in (("G", grid), ("H", hg)):
        row = rows[name]
        assert row["seeds"] == len(values) and "seed" not in row
        assert row["miou"] == pytest.approx(statistics.fmean(values))
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        assert row["miou_std"] == pytest.approx(std, abs=1e-12)
        assert row["mean_accuracy"] is None  # no seed has it: missing, not NaN
        assert row["gflops_per_image"] == pytest.approx(1.0 + (len(values) - 1) / 2)
    wins = sum(h >= g for g, h in zip(grid, hg, strict=False))
    assert paired_wins(SEG, per_seed, "H") == f"{wins}/{min(len(grid), len(hg))}"


def test_per_class_iou_is_averaged_and_goal_uses_means_and_wins():
    per_seed = [record("G", "grid", 0, 0.30, iou_per_class={"Sky": 0.8, "Road": 0.6}),
                record("G", "grid", 1, 0.40, iou_per_class={"Sky": 0.6, "Road": 0.8}),
                record("H", "hg", 0, 0.36, iou_per_class={"Sky": 1.0, "Road": 0.0}),
                record("H", "hg", 1, 0.38, iou_per_class={"Sky": 0.0, "Road": 1.0})]
    rows = seed_means(SEG, per_seed)
    grid, hg = rows
    assert grid["iou_per_class"] == pytest.approx({"Sky": 0.7, "Road": 0.7})
    assert hg["iou_per_class"] == pytest.approx({"Sky": 0.5, "Road": 0.5})
    (goal,) = goal_rows(SEG, rows, per_seed)
    assert goal["delta"] == pytest.approx(2.0)  # 37 - 35 mIoU points, on the means
    assert goal["wins"] == "1/2"  # seed 0 wins, seed 1 loses
    assert goal["metric_ok"] == "yes" and goal["flops_ok"] == "yes"
    assert goal["goal"] == "not resolved"  # the two seeds disagree on the sign
    assert metric_text(hg, "miou") == "37.0 ± 1.4"
    assert metric_text({**hg, "seeds": 1}, "miou") == "37.0"


def test_format_pm_handles_missing_values():
    assert format_pm(None) == "-" and format_pm(math.nan) == "-"
    assert format_pm(0.5, math.nan, seeds=3, scale=100) == "50.0"
    assert format_pm(0.5, 0.01, seeds=3, scale=100, digits=2) == "50.00 ± 1.00"


def test_seeds_must_be_a_positive_int():
    with pytest.raises(ValueError, match="seeds"):
        TaskSchedule(input_size=(32, 32), epochs=1, batch_size=1, seeds=0)
    assert all(TASKS[t].schedules["default"].seeds >= 3 for t in TASKS)


@pytest.mark.parametrize(("hg", "hg_stage", "expected"), [
    ((0.37, 0.44, 0.305), 0.1, "holds"),  # +2, +3, +2.5 points: resolved for HG
    ((0.33, 0.38, 0.255), 0.1, "does not hold"),  # -2, -3, -2.5: resolved against HG
    ((0.36, 0.43, 0.31), 0.1, "not resolved"),  # +1, +2, +3: same sign, but p = 0.07
    ((0.36, 0.38, 0.31), 0.1, "not resolved"),  # +1, -3, +3: the seeds disagree
    ((0.37, 0.44, 0.305), 0.3, "does not hold"),  # better, but 75% of the stage FLOPs
])
def test_goal_is_called_by_the_paired_rule(hg, hg_stage, expected):
    grid = (0.35, 0.41, 0.28)
    per_seed = [record("G", "grid", s, v) for s, v in enumerate(grid)]
    per_seed += [record("H", "hg", s, v, stage_gflops=hg_stage) for s, v in enumerate(hg)]
    (goal,) = goal_rows(SEG, seed_means(SEG, per_seed), per_seed)
    assert goal["goal"] == expected
    diffs = [100 * (h - g) for h, g in zip(hg, grid, strict=True)]
    assert goal["paired"].startswith(f"{statistics.fmean(diffs):+.1f} ± "
                                     f"{statistics.stdev(diffs):.1f}")


def test_paired_rule_is_oriented_for_lower_is_better_metrics():
    task = dataclasses.replace(TASKS["saliency"], primary_metric="mae")

    def rec(model, variant, seed, mae):
        return {"model": model, "variant": variant, "seed": seed, "max_f": 0.5, "mae": mae,
                "stage_gflops": 0.4 if variant == "grid" else 0.1, "params": 10}

    per_seed = [rec("G", "grid", s, v) for s, v in enumerate((0.10, 0.12, 0.11))]
    per_seed += [rec("H", "hg", s, v) for s, v in enumerate((0.08, 0.09, 0.09))]
    (goal,) = goal_rows(task, seed_means(task, per_seed), per_seed)
    assert goal["goal"] == "holds"  # a lower error in every seed


def test_the_goal_corrects_for_several_hg_models():
    grid = (0.35, 0.41, 0.28)
    hg = tuple(g + d for g, d in zip(grid, (0.02, 0.04, 0.03), strict=True))  # p = 0.035
    per_seed = [record("G", "grid", s, v) for s, v in enumerate(grid)]
    per_seed += [record("H", "hg", s, v) for s, v in enumerate(hg)]
    (alone,) = goal_rows(SEG, seed_means(SEG, per_seed), per_seed)
    assert alone["goal"] == "holds"
    per_seed += [record("H2", "hg", s, v) for s, v in enumerate(hg)]
    both = goal_rows(SEG, seed_means(SEG, per_seed), per_seed)
    # two calls from the same grid runs: Holm doubles the smaller p-value
    assert [row["goal"] for row in both] == ["not resolved", "not resolved"]
    assert all("Holm 0.07" in row["paired"] for row in both)
