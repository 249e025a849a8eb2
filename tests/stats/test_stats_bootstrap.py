"""Bootstrap CIs: reproducibility, resampling by patient, weighted AUC."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.stats import auc_score, bootstrap_auc, bootstrap_roc_band, bootstrap_statistic, resample_weights
from lesiondx.stats.bootstrap import weighted_auc


@pytest.fixture
def data():
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(30), 3)
    y = (patients % 3 == 0).astype(int)
    s = rng.normal(y, 1.0)
    return y, s, patients


def test_same_seed_same_ci_different_seed_differs(data):
    y, s, g = data
    a = bootstrap_auc(y, s, groups=g, n_boot=300, seed=11)
    b = bootstrap_auc(y, s, groups=g, n_boot=300, seed=11)
    c = bootstrap_auc(y, s, groups=g, n_boot=300, seed=12)
    assert a == b
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)
    assert a.estimate == pytest.approx(auc_score(y, s))
    assert a.ci_low < a.estimate < a.ci_high


def test_group_weights_constant_within_patient(data):
    _, _, g = data
    for w in resample_weights(g.size, groups=g, n_boot=50, seed=0):
        per_group = w.reshape(w.shape[0], 30, 3)
        assert np.all(per_group == per_group[:, :, :1])
        np.testing.assert_allclose(w.sum(axis=1), g.size)  # 30 patients x 3 images drawn


def test_stratified_weights_keep_class_sizes():
    y = np.array([0] * 7 + [1] * 3)
    for w in resample_weights(10, strata=y, n_boot=40, seed=3):
        np.testing.assert_array_equal(w[:, y == 1].sum(axis=1), 3)
        np.testing.assert_array_equal(w[:, y == 0].sum(axis=1), 7)


def test_weighted_auc_equals_auc_of_repeated_rows(data):
    y, s, _ = data
    rng = np.random.default_rng(5)
    w = rng.integers(0, 3, size=(4, y.size)).astype(float)
    got = weighted_auc(y.astype(bool), s, w)
    for row, val in zip(w.astype(int), got):
        yy, ss = np.repeat(y, row), np.repeat(s, row)
        assert val == pytest.approx(auc_score(yy, ss), abs=1e-12)


def test_roc_band_brackets_median(data):
    y, s, g = data
    band = bootstrap_roc_band(y, s, groups=g, n_boot=200, seed=0)
    assert np.all(band.tpr_low <= band.tpr_median) and np.all(band.tpr_median <= band.tpr_high)
    assert band.tpr_high[-1] == 1.0 and np.all(np.diff(band.tpr_median) >= 0)


def test_bootstrap_statistic_mean_ci_close_to_normal_theory():
    x = np.random.default_rng(2).normal(10.0, 2.0, 400)
    ci = bootstrap_statistic(lambda i: x[i].mean(), x.size, n_boot=1000, seed=0)
    se = x.std(ddof=1) / np.sqrt(x.size)
    assert ci.ci_low == pytest.approx(x.mean() - 1.96 * se, abs=0.05)
    assert ci.ci_high == pytest.approx(x.mean() + 1.96 * se, abs=0.05)
