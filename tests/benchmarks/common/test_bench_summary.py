"""The seed statistics: mean and spread, and the paired rule that calls a
difference resolved, against SciPy's paired t-test."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from benchmarks.common.summary import mean_std, paired_difference, verdict


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
