"""ROC, AUC, thresholds and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from lesiondx.stats import (
    apply_threshold,
    auc_delong,
    auc_score,
    binarize_labels,
    metrics_at_threshold,
    proc_thresholds,
    roc_curve,
    youden_threshold,
)


def test_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)
    assert auc_score(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert auc_delong(y, s).auc == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_roc_curve_endpoints_and_monotone():
    y = [0, 0, 1, 1, 0, 1]
    s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.9]
    c = roc_curve(y, s)
    assert c.thresholds[0] == -np.inf and c.thresholds[-1] == np.inf
    assert (c.sensitivity[0], c.specificity[0]) == (1.0, 0.0)
    assert (c.sensitivity[-1], c.specificity[-1]) == (0.0, 1.0)
    assert np.all(np.diff(c.sensitivity) <= 0) and np.all(np.diff(c.specificity) >= 0)
    # Midpoints between distinct scores, as pROC.
    np.testing.assert_allclose(c.thresholds[1:-1], [0.225, 0.375, 0.6, 0.85])


def test_near_tie_midpoint_moves_to_upper_value():
    a = 1.0
    b = np.nextafter(a, 2.0)  # (a + b) / 2 rounds onto a
    thr = proc_thresholds([a, b])
    assert thr[1] == b  # so that score a stays below the threshold
    c = roc_curve([0, 1], [a, b])
    assert c.sensitivity[1] == 1.0 and c.specificity[1] == 1.0


def test_youden_threshold_from_one_set_applied_to_another():
    y_dev = np.array([0, 0, 0, 1, 1, 1, 1])
    s_dev = np.array([0.1, 0.2, 0.6, 0.5, 0.8, 0.9, 0.85])
    yd = youden_threshold(y_dev, s_dev)
    assert yd.threshold == pytest.approx(0.7)  # midpoint of 0.6 and 0.8
    s_test = np.array([0.65, 0.7, 0.75, 0.2])
    np.testing.assert_array_equal(apply_threshold(s_test, yd.threshold), [False, True, True, False])
    m = metrics_at_threshold([0, 1, 1, 0], s_test, yd.threshold)
    assert (m.confusion.tp, m.confusion.fp, m.confusion.tn, m.confusion.fn) == (2, 0, 2, 0)


def test_score_direction_is_never_flipped():
    y = [0, 0, 1, 1]
    assert auc_score(y, [4, 3, 2, 1]) == 0.0


@pytest.mark.parametrize(
    "y, s, msg",
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], "only one class"),
        ([0, 1, 0], [0.1, np.nan, 0.3], "NaN"),
        ([0, 1], [0.1, 0.2, 0.3], "length mismatch"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "only 0 and 1"),
        ([0, 1, 0], ["a", "b", "c"], "numeric"),
    ],
)
def test_invalid_input_raises_clear_value_error(y, s, msg):
    with pytest.raises(ValueError, match=msg):
        auc_delong(y, s)


def test_binarize_labels_text_and_numeric():
    np.testing.assert_array_equal(binarize_labels(["Good", "Poor", " Poor"], "Poor"), [False, True, True])
    np.testing.assert_array_equal(binarize_labels([0, 1, 1.0], "1"), [False, True, True])
    with pytest.raises(ValueError, match="not found"):
        binarize_labels(["a", "b"], "c")
