"""The seed statistics: mean and spread, and the paired rule that calls a
difference resolved, against SciPy's paired t-test and Holm's step-down procedure."""
import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from benchmarks.common.summary import (
    holm_adjusted,
    holm_text,
    mean_std,
    paired_difference,
    paired_differences,
    verdict,
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=2, max_size=6))
def test_paired_difference_is_scipys_paired_t_test(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    result = paired_difference(a, b)
    diffs = [x - y for x, y in pairs]
    assert result["n"] == len(pairs)
    assert result["mean"] == pytest.approx(sum(diffs) / len(diffs))
    spread = mean_std(diffs)[1]
    if spread > 1e-9:
        reference = stats.ttest_rel(a, b)
        assert result["p"] == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-12)
        assert result["t"] == pytest.approx(reference.statistic, rel=1e-6)
    same_sign = all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    assert result["resolved"] == (same_sign and result["p"] < 0.05)
    assert verdict(result) == ("not resolved" if not result["resolved"] else
                               "better" if result["mean"] > 0 else "worse")


def test_resolved_needs_every_seed_and_the_test():
    assert paired_difference([0.5, 0.6, 0.55], [0.3, 0.41, 0.36])["resolved"]
    mixed = paired_difference([0.5, 0.6, 0.2], [0.3, 0.4, 0.3])  # one seed disagrees
    assert not mixed["resolved"] and mixed["sign"] == 0
    weak = paired_difference([0.31, 0.42, 0.35], [0.30, 0.30, 0.30])  # same sign, too noisy
    assert not weak["resolved"] and weak["p"] > 0.05
    assert not paired_difference([0.5], [0.3])["resolved"]  # one seed resolves nothing
    missing = paired_difference([0.5, None, 0.6], [0.3, 0.2, math.nan])
    assert missing["n"] == 1


def _holm_rejections(p_values, alpha):
    """Holm's step-down procedure as stated in Holm (1979): test the sorted
    hypotheses in turn at alpha / (m - i) and stop at the first that stands."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    rejected = set()
    for rank, i in enumerate(order):
        if p_values[i] >= alpha / (len(p_values) - rank):
            break
        rejected.add(i)
    return rejected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=8), st.sampled_from([0.01, 0.05, 0.1]))
def test_holm_adjusted_rejects_what_the_step_down_procedure_rejects(p_values, alpha):
    adjusted = holm_adjusted(p_values)
    assert {i for i, p in enumerate(adjusted) if p < alpha} == _holm_rejections(p_values, alpha)
    assert all(raw <= adj <= 1.0 for raw, adj in zip(p_values, adjusted, strict=True))
    # the order of the raw p-values is kept
    for (p, q), (pa, qa) in itertools.combinations(zip(p_values, adjusted, strict=True), 2):
        if p < q:
            assert pa <= qa


def test_holm_adjusted_skips_missing_tests():
    adjusted = holm_adjusted([0.01, math.nan, 0.04])
    assert math.isnan(adjusted[1])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.04)
    assert holm_adjusted([0.03]) == [0.03]


def test_a_family_resolves_less_than_its_members_alone():
    base = [0.30, 0.30, 0.30, 0.30]
    clear = ([0.50, 0.60, 0.55, 0.52], [0.30, 0.41, 0.36, 0.31])
    borderline = ([0.315, 0.35, 0.33, 0.37], base)
    other = ([0.31, 0.35, 0.34, 0.37], base)
    alone = [paired_difference(*pair) for pair in (clear, borderline, other)]
    assert all(c["resolved"] for c in alone)
    assert all(0.025 < c["p"] < 0.05 for c in alone[1:])
    # two borderline calls together: the smaller p-value is doubled, neither stands
    pair = paired_differences([borderline, other])
    assert not any(c["resolved"] for c in pair)
    assert all(c["sign"] == 0 and c["family_size"] == 2 for c in pair)
    # a clear call first: Holm tests the next one at the full level again
    with_clear = paired_differences([clear, borderline])
    assert with_clear[0]["resolved"] and with_clear[1]["resolved"]
    for single, member in zip(alone, [*with_clear, pair[1]], strict=True):
        assert member["p"] == single["p"]  # each keeps its own p-value
        assert member["p_adjusted"] >= single["p"]


def test_holm_text_names_the_adjusted_p_value_of_a_family_only():
    clear = ([0.50, 0.60, 0.55, 0.52], [0.30, 0.41, 0.36, 0.31])
    one_seed = ([0.5], [0.3])  # no test: NaN p-values stay out of the family
    first, _, untested = paired_differences([clear, clear, one_seed])
    assert holm_text(first) == f", Holm {first['p_adjusted']:.2g}"
    assert first["p_adjusted"] == pytest.approx(2 * first["p"])
    assert holm_text(untested) == ""
    assert holm_text(paired_difference(*clear)) == ""  # a family of one
