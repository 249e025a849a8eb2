"""The numpy logistic fit (lesiondx.stats.logit) against statsmodels, the reference it replaces at run time."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

from lesiondx.stats.calibration import logistic_recalibration
from lesiondx.stats.logit import SeparationError, logit_fit


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    x = np.column_stack([np.ones(400), rng.normal(size=400), rng.random(400) < 0.4])
    y = (rng.random(400) < 1 / (1 + np.exp(-(x @ [-0.5, 1.2, 0.8])))).astype(float)
    return y, x


def test_estimates_covariance_and_wald_statistics_equal_statsmodels(sample):
    y, x = sample
    ours, ref = logit_fit(y, x), sm.Logit(y, x).fit(disp=0)
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-10)
    np.testing.assert_allclose(ours.cov, ref.cov_params(), rtol=1e-8)
    np.testing.assert_allclose(ours.conf_int(0.1), ref.conf_int(0.1), rtol=1e-8)
    np.testing.assert_allclose(ours.pvalues, ref.pvalues, rtol=1e-8)
    assert ours.llf == pytest.approx(ref.llf, rel=1e-12) and ours.aic == pytest.approx(ref.aic, rel=1e-12)


def test_offset_fit_equals_statsmodels_glm(sample):
    y, x = sample
    offset = 0.9 * x[:, 1]
    ours = logit_fit(y, np.ones((y.size, 1)), offset=offset)
    ref = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=offset).fit()
    # GLM's IRLS stops on a 1e-8 change of the deviance: its estimate is that close to the maximum, not closer
    np.testing.assert_allclose(ours.params, ref.params, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.conf_int(), ref.conf_int(), rtol=0, atol=1e-6)


def test_calibration_intercept_equals_statsmodels_glm(sample):
    y, x = sample
    p = 1 / (1 + np.exp(-(0.3 + 0.7 * x[:, 1])))
    r = logistic_recalibration(y, p)
    lp = np.log(p / (1 - p))
    ref = sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=lp).fit()
    assert r.intercept == pytest.approx(ref.params[0], abs=1e-6)
    assert r.intercept_ci == pytest.approx(tuple(np.asarray(ref.conf_int())[0]), abs=1e-6)


def test_separation_and_quasi_separation_are_value_errors():
    x = np.column_stack([np.ones(6), np.arange(6.0)])
    with pytest.raises(SeparationError, match="perfect separation"):
        logit_fit(np.array([0, 0, 0, 1, 1, 1.0]), x)
    # quasi-complete: x = 2 holds both outcomes, elsewhere x separates them; the slope grows without bound
    xq = np.column_stack([np.ones(8), [0, 1, 2, 2, 2, 2, 3, 4.0]])
    with np.errstate(over="ignore"), pytest.raises(ValueError):
        logit_fit(np.array([0, 0, 0, 1, 0, 1, 1, 1.0]), xq)
