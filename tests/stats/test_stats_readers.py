"""Kappa, McNemar, Mann-Whitney and reading-time summaries against reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss

from lesiondx.stats import (
    auc_score,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    mann_whitney,
    mcnemar_test,
    summarize_times,
)


def test_cohen_kappa_matches_sklearn_and_statsmodels_se():
    rng = np.random.default_rng(0)
    a = rng.choice(["benign", "malignant", "unsure"], 80)
    b = np.where(rng.random(80) < 0.7, a, rng.choice(["benign", "malignant", "unsure"], 80))
    k = cohen_kappa(a, b)
    assert k.kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    cats = np.unique(np.concatenate([a, b]))
    table = np.array([[np.sum((a == r) & (b == c)) for c in cats] for r in cats])
    ref = cohens_kappa(table)
    assert k.se == pytest.approx(ref.std_kappa, rel=1e-10)
    assert (k.ci_low, k.ci_high) == pytest.approx((ref.kappa_low, ref.kappa_upp), rel=1e-10)


def test_fleiss_kappa_wikipedia_example_and_statsmodels():
    # Fleiss (1971) worked example as on Wikipedia: 10 subjects, 14 raters, 5 categories -> 0.210
    counts = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    assert fleiss_kappa_from_counts(counts) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa_from_counts(counts) == pytest.approx(sm_fleiss(counts), abs=1e-12)
    ratings = np.array([["a", "a", "b"], ["b", "b", "b"], ["a", "b", "c"], ["c", "c", "c"]])
    counts2 = np.array([[2, 1, 0], [0, 3, 0], [1, 1, 1], [0, 0, 3]])
    assert fleiss_kappa(ratings) == pytest.approx(sm_fleiss(counts2), abs=1e-12)


@pytest.mark.parametrize("b, c, exact", [(3, 9, True), (0, 5, True), (20, 40, False), (30, 12, None)])
def test_mcnemar_matches_statsmodels(b, c, exact):
    x1 = np.array([1] * b + [0] * c + [1] * 17 + [0] * 11, dtype=bool)
    x2 = np.array([0] * b + [1] * c + [1] * 17 + [0] * 11, dtype=bool)
    res = mcnemar_test(x1, x2, exact=exact)
    use_exact = exact if exact is not None else (b + c < 25)
    table = [[17, b], [c, 11]]
    ref = mcnemar(table, exact=use_exact, correction=True)
    assert (res.b, res.c) == (b, c)
    assert res.p == pytest.approx(ref.pvalue, rel=1e-10)
    assert res.method == ("exact" if use_exact else "chi2")


def test_mcnemar_no_discordant_pairs():
    assert mcnemar_test([1, 0], [1, 0]).p == 1.0


def test_mann_whitney_u_is_auc():
    rng = np.random.default_rng(1)
    x, y = np.round(rng.normal(1, 1, 30), 1), np.round(rng.normal(0, 1, 40), 1)
    r = mann_whitney(x, y)
    assert r.auc == pytest.approx(auc_score(np.r_[np.ones(30), np.zeros(40)], np.r_[x, y]))
    assert r.p == pytest.approx(sps.mannwhitneyu(x, y).pvalue)


def test_time_summary_t_interval_and_bootstrap_median():
    v = np.array([31.0, 45.0, 28.0, 60.0, 52.0, 38.0, 41.0, 35.0])
    s = summarize_times(v, n_boot=500, seed=0)
    lo, hi = sps.t.interval(0.95, df=v.size - 1, loc=v.mean(), scale=sps.sem(v))
    assert (s.mean_ci_low, s.mean_ci_high) == pytest.approx((lo, hi))
    assert s.median == np.median(v) and s.median_ci_low <= s.median <= s.median_ci_high
    b = summarize_times(v, method="bootstrap", n_boot=500, seed=0)
    assert (
        b.mean == s.mean and b.mean_ci_low > v.min() and b == summarize_times(v, method="bootstrap", n_boot=500, seed=0)
    )


def test_small_sample_confidence_intervals_stay_within_the_statistic_range():
    """5 cases: the Wald CI of kappa (1.238 before) and of a paired AUC difference (beyond -1 before) are cut at the
    bounds the statistics cannot pass."""
    from lesiondx.stats.delong import delong_paired_test

    k = cohen_kappa(["benign", "malignant", "benign", "benign", "malignant"],
                    ["benign", "malignant", "malignant", "benign", "malignant"])
    assert -1.0 <= k.ci_low < k.kappa < k.ci_high == 1.0
    y = np.array([0, 0, 1, 1])
    paired = delong_paired_test(y, np.array([0.9, 0.1, 0.2, 0.8]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert -1.0 == paired.diff_ci_low < paired.diff < paired.diff_ci_high <= 1.0
