"""Confusion matrix, threshold metrics and Wilson intervals."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from lesiondx.stats import binary_metrics, confusion_matrix, wilson_ci


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (10, 10), (57, 113), (1, 1)])
def test_wilson_matches_statsmodels(k, n):
    ci = wilson_ci(k, n)
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert ci.estimate == pytest.approx(k / n)
    assert (ci.ci_low, ci.ci_high) == pytest.approx((lo, hi), abs=1e-12)


def test_wilson_empty_and_invalid():
    assert np.isnan(wilson_ci(0, 0).estimate)
    with pytest.raises(ValueError):
        wilson_ci(5, 3)


def test_confusion_and_metrics():
    y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    p = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
    cm = confusion_matrix(y, p)
    assert (cm.tp, cm.fn, cm.fp, cm.tn) == (3, 1, 1, 5)
    np.testing.assert_array_equal(cm.as_array(), [[5, 1], [1, 3]])
    m = binary_metrics(y, p)
    assert m.sensitivity.estimate == 0.75 and m.recall is m.sensitivity
    assert m.specificity.estimate == pytest.approx(5 / 6)
    assert m.ppv.estimate == 0.75 and m.precision is m.ppv
    assert m.npv.estimate == pytest.approx(5 / 6)
    assert m.accuracy.estimate == 0.8
    assert m.f1 == pytest.approx(0.75)
    assert m.sensitivity.ci_low < 0.75 < m.sensitivity.ci_high


def test_ppv_undefined_without_positive_calls():
    m = binary_metrics([1, 0, 0], [0, 0, 0])
    assert np.isnan(m.ppv.estimate) and m.ppv.n == 0
    assert m.npv.estimate == pytest.approx(2 / 3)
