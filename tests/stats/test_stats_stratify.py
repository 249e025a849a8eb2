"""Stratified AUC tables and size bands."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.stats import auc_delong, bands, delong_unpaired_test, stratified_auc_table


def test_bands_labels_and_left_closed():
    out = bands([3, 10, 19.9, 20, 45], [0, 10, 20, np.inf], unit="mm")
    assert out.astype(str).tolist() == ["<10 mm", "10-20 mm", "10-20 mm", ">=20 mm", ">=20 mm"]


def test_table_rows_match_direct_computation(predictions):
    t = stratified_auc_table(predictions, "centre", positive="malignant")
    assert t["level"].tolist() == ["A", "B"] and t["n"].sum() == len(predictions)
    y = (predictions["label"] == "malignant").to_numpy()
    s = predictions["score"].to_numpy()
    a = (predictions["centre"] == "A").to_numpy()
    direct = auc_delong(y[a], s[a])
    row = t.iloc[0]
    assert (row.auc, row.ci_low, row.ci_high) == pytest.approx((direct.auc, direct.ci_low, direct.ci_high))
    assert row.p == pytest.approx(delong_unpaired_test(y[a], s[a], y[~a], s[~a]).p)
    assert row.compared_with == "rest"


def test_categorical_order_missing_level_and_small_strata(predictions):
    df = predictions.copy()
    df["size_band"] = bands(df["size_mm"], [0, 10, 20, np.inf], "mm")
    df.loc[0, "size_band"] = np.nan
    df["tiny"] = np.where(np.arange(len(df)) == 1, "x", "y")
    t = stratified_auc_table(df, ["size_band", "tiny"], positive="malignant", compare="first")
    sb = t[t.stratum == "size_band"]
    assert sb["level"].tolist() == ["<10 mm", "10-20 mm", ">=20 mm", "missing"]
    assert np.isnan(sb.iloc[0].p)  # the reference level is not tested against itself
    tiny = t[(t.stratum == "tiny") & (t.level == "x")].iloc[0]
    assert tiny.n == 1 and np.isnan(tiny.auc) and np.isnan(tiny.ci_low)


def test_missing_column_raises(predictions):
    with pytest.raises(ValueError, match="missing column"):
        stratified_auc_table(predictions, "phase", positive="malignant")


def test_a_perfectly_separated_small_level_gets_no_p_value(predictions):
    """9 cases perfectly separated have DeLong variance 0: the unpaired test took their AUC as exact and gave
    p = 1e-5 against the rest; now p is not given (CI and AUC stay)."""
    df = predictions.copy()
    small = df.index[:9]
    df.loc[small, "centre"] = "C"
    df.loc[small, "label"] = ["malignant"] * 4 + ["benign"] * 5
    df.loc[small, "score"] = [0.9, 0.8, 0.85, 0.95, 0.1, 0.2, 0.3, 0.15, 0.05]
    t = stratified_auc_table(df, "centre", positive="malignant").set_index("level")
    assert t.loc["C", "auc"] == 1.0 and np.isnan(t.loc["C", "p"])
    assert np.isfinite(t.loc["A", "p"])  # A and B still tested against their rest
