"""Calibration slope and intercept (logistic recalibration) on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.stats.calibration import logistic_recalibration


def _sample(n: int = 20000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    return rng.random(n) < p, p  # outcomes drawn from the predicted probabilities: perfectly calibrated


def _expit(x):
    return 1 / (1 + np.exp(-x))


def _logit(p):
    return np.log(p / (1 - p))


def test_perfectly_calibrated_scores_give_slope_1_intercept_0():
    y, p = _sample()
    r = logistic_recalibration(y, p)
    assert r.slope == pytest.approx(1.0, abs=0.06) and r.intercept == pytest.approx(0.0, abs=0.05)
    assert r.slope_ci[0] < 1.0 < r.slope_ci[1] and r.intercept_ci[0] < 0.0 < r.intercept_ci[1]


def test_overconfident_and_shifted_scores():
    y, p = _sample(seed=1)
    too_extreme = logistic_recalibration(y, _expit(2.0 * _logit(p)))  # logit doubled → slope 1/2
    assert too_extreme.slope == pytest.approx(0.5, abs=0.03)
    too_high = logistic_recalibration(y, _expit(_logit(p) + 1.0))  # risks overestimated by 1 logit → intercept −1
    assert too_high.intercept == pytest.approx(-1.0, abs=0.06) and too_high.slope == pytest.approx(1.0, abs=0.06)


def test_not_estimable_is_a_clear_error():
    with pytest.raises(ValueError, match="not estimable"):
        logistic_recalibration([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    with pytest.raises(ValueError, match="both classes"):
        logistic_recalibration([1, 1, 1], [0.1, 0.2, 0.8])
