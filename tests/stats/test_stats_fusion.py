"""Logistic fusion (ORs against statsmodels) and the nomogram."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from lesiondx.stats import fit_logistic, fusion_model, nomogram_scale, plot_nomogram, univariate_screen

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def clinical() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    n = 300
    df = pd.DataFrame(
        {
            "score": rng.random(n),
            "age": rng.normal(60, 10, n).round(),
            "sex": rng.choice(["F", "M"], n),
            "noise": rng.normal(size=n),
        }
    )
    lp = -3.0 + 4.0 * df["score"] + 0.04 * (df["age"] - 60) + 0.9 * (df["sex"] == "M")
    df["outcome"] = np.where(rng.random(n) < 1 / (1 + np.exp(-lp)), "malignant", "benign")
    return df


def test_odds_ratios_equal_statsmodels(clinical):
    m = fit_logistic(clinical, "outcome", ["score", "age", "sex"], positive="malignant")
    x = sm.add_constant(
        pd.DataFrame(
            {"score": clinical["score"], "age": clinical["age"], "sex[M]": (clinical["sex"] == "M").astype(float)}
        )
    )
    ref = sm.Logit((clinical["outcome"] == "malignant").astype(float), x).fit(disp=0)
    ci = np.exp(ref.conf_int().to_numpy())
    t = m.table()
    assert t["term"].tolist() == ["score", "age", "sex[M]"]
    np.testing.assert_allclose(t["odds_ratio"], np.exp(ref.params.to_numpy()[1:]), rtol=1e-10)
    np.testing.assert_allclose(t[["ci_low", "ci_high"]].to_numpy(), ci[1:], rtol=1e-10)
    np.testing.assert_allclose(t["p"], ref.pvalues.to_numpy()[1:], rtol=1e-8)
    new = clinical.head(7)
    np.testing.assert_allclose(m.predict(new), ref.predict(x.head(7)), rtol=1e-10)


def test_predict_rejects_unseen_level(clinical):
    m = fit_logistic(clinical, "outcome", ["sex"], positive="malignant")
    with pytest.raises(ValueError, match="not seen"):
        m.predict(pd.DataFrame({"sex": ["X"]}))


def test_screen_selects_informative_variables(clinical):
    s = univariate_screen(clinical, "outcome", ["score", "noise"], positive="malignant")
    sel = dict(zip(s["variable"], s["selected"]))
    assert sel["score"] and not sel["noise"]
    assert (s["p_variable"] < 0.1).tolist() == s["selected"].tolist()


def test_fusion_model_uses_selected_variables(clinical):
    res = fusion_model(clinical, "outcome", "score", ["age", "sex", "noise"], positive="malignant")
    chosen = set(res.screen.loc[res.screen["selected"], "variable"]) | {"score"}
    assert set(res.model.variables) == chosen and "noise" not in chosen


def test_perfect_separation_is_a_value_error():
    df = pd.DataFrame({"x": [0, 1, 2, 3, 4, 5.0], "y": [0, 0, 0, 1, 1, 1]})
    with pytest.raises(ValueError, match="failed"):
        fit_logistic(df, "y", ["x"])


def test_nomogram_points_reproduce_model_probability(clinical):
    m = fit_logistic(clinical, "outcome", ["score", "age", "sex"], positive="malignant")
    sc = nomogram_scale(m)
    coef = dict(zip(m.terms, m.coef[1:]))
    spans = [abs(coef[v]) * (m.ranges[v][1] - m.ranges[v][0]) for v in ("score", "age")] + [abs(coef["sex[M]"])]
    assert sc.scale == pytest.approx(100.0 / max(spans))  # widest variable spans 0-100 points
    assert sc.max_total == pytest.approx(sum(spans) * sc.scale)
    row = pd.DataFrame({"score": [0.7], "age": [55.0], "sex": ["M"]})
    lo_age, hi_age = m.ranges["age"]
    lo_score, hi_score = m.ranges["score"]
    # points of each variable relative to its zero-points value
    pts_score = (coef["score"] * 0.7 - min(coef["score"] * lo_score, coef["score"] * hi_score)) * sc.scale
    pts_age = (coef["age"] * 55.0 - min(coef["age"] * lo_age, coef["age"] * hi_age)) * sc.scale
    pts_sex = (coef["sex[M]"] - min(0.0, coef["sex[M]"])) * sc.scale
    assert sc.probability(pts_score + pts_age + pts_sex) == pytest.approx(m.predict(row)[0], rel=1e-10)
    fig = plot_nomogram(m)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"Points", "score", "age", "sex", "Total points", "Probability"} <= texts
    matplotlib.pyplot.close(fig)
