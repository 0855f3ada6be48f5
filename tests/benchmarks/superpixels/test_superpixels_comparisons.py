"""The superpixel benchmark's pure helpers: the paired comparisons, grouped by the
question they answer, each family resolved together (Holm), against the single-pair
rule; the batch-scaling summary, what it says of the allocator, and the groups of
a resized image."""
import pytest

from benchmarks.common.summary import paired_difference
from benchmarks.superpixels.command import (
    comparisons,
    families,
    findings,
    scaling_growth,
    scaling_table,
)
from benchmarks.superpixels.graphs import NUM_SEGMENTS, groups_at


def row(kind, conv, accuracies):
    return {"kind": kind, "conv": conv, "per_seed": dict(enumerate(accuracies))}


BASE = (0.90, 0.91, 0.92)


def test_families_follow_the_questions_and_skip_untrained_models():
    rows = [row("groups", conv, BASE) for conv in ("hgconv", "gmm", "spline")]
    rows += [row("learned", "hgconv", BASE), row("slic", "gmm", BASE)]
    got = families(rows)
    assert [(("groups", "hgconv"), ("groups", "gmm")),
            (("groups", "hgconv"), ("groups", "spline"))] in got
    assert [(("learned", "hgconv"), ("groups", "hgconv"))] in got
    assert [(("groups", "gmm"), ("slic", "gmm"))] in got
    assert sum(len(f) for f in got) == 4  # nothing for models that were not trained


def test_each_family_is_corrected_on_its_own():
    # HGConv 2, 4 and 3 points above both rivals on the fixed groups: p = 0.035 alone
    better = tuple(b + d for b, d in zip(BASE, (0.02, 0.04, 0.03), strict=True))
    rows = [row("groups", "hgconv", better), row("groups", "gmm", BASE),
            row("groups", "spline", BASE),
            row("learned", "hgconv", [b + d for b, d in zip(better, (0.01, 0.03, 0.02),
                                                              strict=True)])]
    alone = paired_difference(better, BASE)
    assert alone["resolved"] and alone["p"] == pytest.approx(0.035, abs=0.001)
    found = comparisons(rows)
    for rival in ("gmm", "spline"):  # a family of two: neither call stands
        c = found[(("groups", "hgconv"), ("groups", rival))]
        assert not c["resolved"] and c["family_size"] == 2
        assert c["p_adjusted"] == pytest.approx(2 * alone["p"])
    # learned against fixed is a question of its own (here a family of one)
    learned = found[(("learned", "hgconv"), ("groups", "hgconv"))]
    assert learned["family_size"] == 1 and learned["p_adjusted"] == learned["p"]
    assert (("groups", "gmm"), ("groups", "hgconv")) not in found  # not reported


def test_scaling_growth_is_the_largest_rise_to_a_larger_batch_per_size():
    scaling = [{"size": "28x28", "batch": 4, "ms_per_image": 0.5},
               {"size": "28x28", "batch": 1, "ms_per_image": 2.0},
               {"size": "28x28", "batch": 16, "ms_per_image": 1.0},  # 2x the batch of 4
               {"size": "28x28", "batch": 64, "ms_per_image": 0.25},
               {"size": "96x128", "batch": 1, "ms_per_image": 3.0},
               {"size": "96x128", "batch": 16, "ms_per_image": 1.5},  # falling: no rise
               {"size": "64x64", "batch": 1, "ms_per_image": 1.0}]  # one batch size
    assert scaling_growth(scaling) == {"28x28": 2.0, "96x128": 1.0, "64x64": 1.0}


def test_groups_keep_the_digits_pixels_per_group():
    assert groups_at((28, 28)) == NUM_SEGMENTS
    assert groups_at((56, 56)) == 4 * NUM_SEGMENTS
    assert groups_at((1, 1)) == 1


def building(threads, measured, kept):
    def records(costs):
        return [{"size": "96x128", "groups": 1176, "batch": b, "ms_per_image": c}
                for b, c in zip((16, 64, 256), costs, strict=True)]
    return {"threads": threads, "batched_speedup": 10.0, "batched_as_batch_speedup": 9.5,
            "batched_with_split_speedup": 9.0,
            "per_image_speedup": 2.0, "scaling": records(measured),
            "scaling_kept_memory": None if kept is None else records(kept)}


def test_findings_say_whether_a_rise_goes_where_freed_memory_is_kept():
    runs = [building(1, (4.0, 4.4, 5.2), (4.0, 4.1, 4.0)),  # 1.3x, 1.025x kept
            building(2, (2.0, 2.2, 2.6), (2.0, 2.3, 2.6)),  # 1.3x either way
            building(3, (2.0, 2.0, 2.1), (2.0, 2.0, 2.0)),  # holds
            building(4, (2.0, 2.0, 2.6), None)]  # not glibc: nothing to say
    lines = {line.split(" thread(s)")[0][-1]: line for line in findings({}, runs).splitlines()
             if line.startswith("* Batched module")}
    assert "1.30x" in lines["1"] and "does not hold" in lines["1"]
    assert "1.02x where the C library keeps freed memory: the rise is the fresh pages" \
        in lines["1"]
    assert "1.30x where the C library keeps freed memory: the rise is not only" in lines["2"]
    assert "holds" in lines["3"] and "1.00x where" in lines["3"] and ": the rise" not in lines["3"]
    assert "does not hold)." in lines["4"] and "keeps freed memory" not in lines["4"]
    kept_table = scaling_table(runs, "scaling_kept_memory")
    assert kept_table.count("96x128") == 3 and "goal" not in kept_table
    assert "goal <= 1.1" in scaling_table(runs)
    assert scaling_table(runs[3:], "scaling_kept_memory").startswith("(not measured")
