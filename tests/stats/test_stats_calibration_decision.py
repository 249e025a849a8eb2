"""Calibration curve, Hosmer-Lemeshow and decision curves (checked against dcurves)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from dcurves import dca

from lesiondx.stats import calibration_curve, hosmer_lemeshow, net_benefit


def test_calibration_bins_by_hand():
    y = [0, 0, 1, 1, 1]
    p = [0.05, 0.15, 0.55, 0.95, 1.0]
    c = calibration_curve(y, p, n_bins=2)
    np.testing.assert_allclose(c.mean_predicted, [0.1, (0.55 + 0.95 + 1.0) / 3])
    np.testing.assert_allclose(c.observed, [0.0, 1.0])
    assert c.counts.tolist() == [2, 3]
    assert c.brier == pytest.approx(np.mean((np.array(p) - np.array(y)) ** 2))


def test_calibration_rejects_non_probabilities():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_curve([0, 1], [0.2, 1.7])


def test_hosmer_lemeshow_small_example_by_hand():
    hl = hosmer_lemeshow([0, 1, 0, 1, 1, 1], [0.1, 0.1, 0.5, 0.5, 0.9, 0.9], n_groups=3)
    # groups: O-E = 0.8, 0, 0.2 with variances 0.18, 0.5, 0.18
    assert hl.statistic == pytest.approx(0.64 / 0.18 + 0.04 / 0.18)
    assert hl.df == 1
    assert hl.p == pytest.approx(0.05185, abs=1e-4)


def test_hosmer_lemeshow_detects_miscalibration():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.05, 0.95, 2000)
    y = rng.random(2000) < p
    assert hosmer_lemeshow(y, p).p > 0.01  # calibrated by construction (fixed seed)
    assert hosmer_lemeshow(y, p**2).p < 1e-6  # systematically too low


def test_net_benefit_closed_form_by_hand():
    y = np.array([1, 1, 0, 0, 0])
    p = np.array([0.9, 0.4, 0.6, 0.2, 0.1])
    dc = net_benefit(y, p, thresholds=[0.0, 0.5])
    # t = 0.5: TP = 1 (0.9), FP = 1 (0.6): 1/5 - 1/5 * 1
    np.testing.assert_allclose(dc.model, [2 / 5 - 3 / 5 * 0.0, 0.0])
    np.testing.assert_allclose(dc.treat_all, [0.4, 0.4 - 0.6])
    assert np.all(dc.treat_none == 0.0)


def test_net_benefit_agrees_with_dcurves():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 120)
    p = np.round(np.clip(0.35 * y + rng.random(120) * 0.65, 0, 1), 2)  # ties on threshold grid
    thresholds = np.round(np.arange(0.0, 1.0, 0.01), 2)
    ref = dca(data=pd.DataFrame({"y": y, "m": p}), outcome="y", modelnames=["m"], thresholds=list(thresholds))
    dc = net_benefit(y, p, thresholds)
    for model, ours in (("m", dc.model), ("all", dc.treat_all), ("none", dc.treat_none)):
        theirs = ref[ref["model"] == model].sort_values("threshold")["net_benefit"].to_numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-12, err_msg=model)


def test_net_benefit_rejects_threshold_one():
    with pytest.raises(ValueError, match="thresholds"):
        net_benefit([0, 1], [0.2, 0.8], thresholds=[0.5, 1.0])


def test_calibration_bins_carry_wilson_cis_drawn_as_bars():
    """Each bin's observed fraction has the Wilson 95% CI of its events out of its count (statsmodels'
    proportion_confint is the reference); the plot draws them."""
    from statsmodels.stats.proportion import proportion_confint

    from lesiondx.stats.plots import calibration_figure

    rng = np.random.default_rng(5)
    p = rng.uniform(0, 1, 300)
    y = rng.uniform(0, 1, 300) < p
    c = calibration_curve(y, p, n_bins=10)
    events = np.rint(c.observed * c.counts).astype(int)
    low, high = proportion_confint(events, c.counts, method="wilson")
    np.testing.assert_allclose(c.observed_ci_low, low, atol=1e-12)
    np.testing.assert_allclose(c.observed_ci_high, high, atol=1e-12)
    assert c.to_dict()["observed_ci_low"] == c.observed_ci_low.tolist()
    fig = calibration_figure(c)
    assert any("95% CI per bin" in t.get_text() for t in fig.axes[0].get_legend().get_texts())


def test_calibration_slope_refuses_hard_calls():
    from lesiondx.stats.calibration import logistic_recalibration

    y = np.array([0, 0, 0, 1, 1, 1, 0, 1, 1, 0])
    with pytest.raises(ValueError, match="scores take 2 value"):
        logistic_recalibration(y, [0, 0, 1, 1, 1, 0, 0, 1, 1, 1])


def test_net_benefit_band_is_the_percentile_of_resampled_curves_by_hand():
    """The vectorised bootstrap band equals net benefit recomputed on each resample (same weights), and holds
    the point estimate; whole patients are resampled when groups are given."""
    from lesiondx.stats.bootstrap import resample_weights
    from lesiondx.stats.decision import net_benefit_band

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 60).astype(bool)
    p = np.clip(0.35 * y + rng.uniform(0, 0.65, 60), 0, 0.999)
    band = net_benefit_band(y, p, [0.2, 0.5], n_boot=300, seed=7)
    by_hand = []
    for weights in resample_weights(60, n_boot=300, seed=7):
        for w in weights:
            idx = np.repeat(np.arange(60), w.astype(int))
            by_hand.append([net_benefit(y[idx], p[idx], [t]).model[0] for t in (0.2, 0.5)])
    np.testing.assert_allclose(band.low, np.quantile(by_hand, 0.025, axis=0), atol=1e-12)
    np.testing.assert_allclose(band.high, np.quantile(by_hand, 0.975, axis=0), atol=1e-12)
    point = net_benefit(y, p, [0.2, 0.5]).model
    assert np.all(band.low <= point) and np.all(point <= band.high) and np.all(band.low < band.high)
    twins = net_benefit_band(np.repeat(y, 2), np.repeat(p, 2), [0.2, 0.5], groups=np.repeat([f"p{i:02d}" for i in range(60)], 2),
                             n_boot=300, seed=7)
    np.testing.assert_allclose(twins.low, band.low, atol=1e-12)  # a patient's two copies drawn together


def test_report_runs_hosmer_lemeshow_with_at_least_five_cases_a_group(tmp_path):
    """12 cases: no test (2 groups of 6 leave no df), was 10 'deciles' of about one case; 40 cases: 8 groups."""
    from lesiondx.stats.report import write_report

    rng = np.random.default_rng(1)
    for n, groups in ((12, None), (40, 8), (200, 10)):
        y = np.tile([0, 1], n // 2)
        frame = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "label": y,
                              "score": np.clip(0.3 * y + rng.uniform(0, 0.7, n), 0, 1)})
        metrics = write_report(frame, tmp_path / str(n), positive=1, patient_col=None, n_boot=50).metrics["image"]
        assert (metrics.get("hosmer_lemeshow") or {}).get("groups") == groups
        if groups:
            assert metrics["hosmer_lemeshow"]["df"] == groups - 2
