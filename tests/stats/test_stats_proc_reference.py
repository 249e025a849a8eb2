"""lesiondx.stats against R pROC 1.18 reference values (fixtures/make_proc_fixtures.R).

Tables: heavy ties (scores rounded to 1 decimal), pROC's aSAH (s100b, ordinal wfns, ndka)
and a table with two thresholds tied for the best Youden index.
"""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.stats import (
    auc_delong,
    auc_score,
    binarize_labels,
    delong_paired_test,
    delong_unpaired_test,
    roc_curve,
    youden_threshold,
)

TOL = 1e-6
DATASETS = ("ties", "asah", "youden_tie")


def _labels(ref, df):
    return binarize_labels(df[ref["label"]], ref["positive"])


def _cases(proc_ref, key):
    return [(key, r) for r in proc_ref[key]["rocs"]]


@pytest.mark.parametrize("key", DATASETS)
def test_auc_and_delong_ci_match_proc(proc_ref, proc_tables, key):
    ref, df = proc_ref[key], proc_tables[key]
    y = _labels(ref, df)
    for r in ref["rocs"]:
        res = auc_delong(y, df[r["score"]])
        got = np.array([res.auc, res.ci_low, res.ci_high, res.se])
        want = np.array([r["auc"], r["ci_low"], r["ci_high"], r["se"]], dtype=float)
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL, err_msg=f"{key}/{r['score']}")
        assert (res.n_pos, res.n_neg) == (r["n_pos"], r["n_neg"])
        assert auc_score(y, df[r["score"]]) == pytest.approx(r["auc"], abs=TOL)


@pytest.mark.parametrize("key", DATASETS)
def test_youden_matches_proc_first_best_row(proc_ref, proc_tables, floats, key):
    ref, df = proc_ref[key], proc_tables[key]
    y = _labels(ref, df)
    for r in ref["rocs"]:
        res = youden_threshold(y, df[r["score"]])
        thr = floats(r["youden_thresholds"])
        assert res.n_tied == thr.size
        assert res.threshold == pytest.approx(thr[0], abs=TOL)
        assert res.sensitivity == pytest.approx(floats(r["youden_sensitivities"])[0], abs=TOL)
        assert res.specificity == pytest.approx(floats(r["youden_specificities"])[0], abs=TOL)


def test_youden_tie_reports_lowest_of_tied_thresholds(proc_ref, proc_tables, floats):
    r = proc_ref["youden_tie"]["rocs"][0]
    res = youden_threshold(proc_tables["youden_tie"]["label"], proc_tables["youden_tie"]["score"])
    assert floats(r["youden_thresholds"]).tolist() == [2.5, 4.5]
    assert res.threshold == 2.5 and res.n_tied == 2


def test_full_roc_curve_matches_proc_coords(proc_ref, proc_tables, floats):
    ref, df = proc_ref["ties"], proc_tables["ties"]
    c = ref["curve"]
    curve = roc_curve(_labels(ref, df), df[c["score"]])
    np.testing.assert_array_equal(curve.thresholds, floats(c["thresholds"]))
    np.testing.assert_allclose(curve.sensitivity, floats(c["sensitivities"]), atol=TOL, rtol=0)
    np.testing.assert_allclose(curve.specificity, floats(c["specificities"]), atol=TOL, rtol=0)


@pytest.mark.parametrize("key", ("ties", "asah"))
def test_paired_delong_matches_proc(proc_ref, proc_tables, key):
    ref, df = proc_ref[key], proc_tables[key]
    y = _labels(ref, df)
    for r in ref["paired"]:
        t = delong_paired_test(y, df[r["score1"]], df[r["score2"]])
        got = [t.z, t.p, t.diff_ci_low, t.diff_ci_high]
        want = [r["z"], r["p"], r["diff_ci_low"], r["diff_ci_high"]]
        np.testing.assert_allclose(got, want, atol=TOL, rtol=0, err_msg=f"{r['score1']} vs {r['score2']}")
        # Swapping the scores flips the sign of z and keeps p.
        back = delong_paired_test(y, df[r["score2"]], df[r["score1"]])
        assert back.z == pytest.approx(-t.z) and back.p == pytest.approx(t.p)


@pytest.mark.parametrize("key", ("ties", "asah"))
def test_unpaired_delong_matches_proc(proc_ref, proc_tables, key):
    ref, df = proc_ref[key], proc_tables[key]
    y = _labels(ref, df)
    for r in ref["unpaired"]:
        g = df[r["group"]].astype(str).to_numpy()
        a, b = g == r["level1"], g == r["level2"]
        s = df[r["score"]].to_numpy()
        t = delong_unpaired_test(y[a], s[a], y[b], s[b])
        np.testing.assert_allclose([t.statistic, t.df, t.p], [r["d"], r["df"], r["p"]], atol=TOL, rtol=0)
