"""HTML report and metrics.json."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from lesiondx.stats import aggregate_binary, auc_delong, bands, metrics_at_threshold, write_report, youden_threshold

KEYS = {"auc", "auc_ci", "accuracy", "sensitivity", "specificity", "ppv", "npv", "threshold", "n", "n_pos", "n_neg"}


@pytest.fixture(scope="module")
def written(tmp_path_factory, predictions):
    df = predictions.assign(size_band=bands(predictions["size_mm"], [0, 10, 20, np.inf], "mm"))
    res = write_report(
        df,
        tmp_path_factory.mktemp("rep"),
        positive="malignant",
        strata=["centre", "size_band"],
        title="Liver US test",
        n_boot=200,
    )
    return df, res


def test_metrics_json_image_and_patient(written):
    df, res = written
    m = json.loads(res.metrics_path.read_text())
    assert m == res.metrics
    assert KEYS <= set(m["image"]) and KEYS <= set(m["patient"])
    y = (df["label"] == "malignant").to_numpy()
    a = auc_delong(y, df["score"])
    assert m["image"]["auc"] == pytest.approx(a.auc) and m["image"]["auc_ci"] == pytest.approx([a.ci_low, a.ci_high])
    yd = youden_threshold(y, df["score"])
    assert m["image"]["threshold"] == pytest.approx(yd.threshold) and m["image"]["threshold_method"] == "youden"
    assert m["image"]["sensitivity"] == pytest.approx(yd.sensitivity)
    pat = aggregate_binary(df.assign(y=y.astype(int)), "patient_id", label_col="y")
    assert m["n_patients"] == 40 and m["patient"]["n"] == 40
    assert m["patient"]["auc"] == pytest.approx(auc_delong(pat["y"], pat["score"]).auc)
    assert [r["level"] for r in m["image"]["strata"]["size_band"]] == ["<10 mm", "10-20 mm", ">=20 mm"]
    assert "centre" in m["patient"]["strata"]  # centre is constant within patients
    assert m["image"]["confusion"]["tp"] + m["image"]["confusion"]["fn"] == m["image"]["n_pos"]


def test_html_is_self_contained_with_png_figures(written):
    _, res = written
    html = res.html_path.read_text()
    assert "Liver US test" in html and "Per-image evaluation" in html and "Per-patient evaluation" in html
    assert "Stratified by size_band" in html
    assert not re.search(r'(src|href)="(https?:|//|file:)', html)
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 8  # ROC, confusion, calibration, decision per level
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)


def test_fixed_threshold_numeric_labels_no_patients_non_probability_scores(tmp_path, predictions):
    df = predictions.assign(
        label=(predictions["label"] == "malignant").astype(int),
        score=np.log(predictions["score"] / (1 - predictions["score"])),
    )
    res = write_report(df.drop(columns="patient_id"), tmp_path / "r", positive=1, threshold=0.0, n_boot=100)
    m = res.metrics
    assert m["patient"] is None and m["image"]["threshold"] == 0.0 and m["image"]["threshold_method"] == "fixed"
    direct = metrics_at_threshold(df["label"], df["score"], 0.0)
    assert m["image"]["specificity"] == pytest.approx(direct.specificity.estimate)
    assert "brier" not in m["image"]
    html = res.html_path.read_text()
    assert "calibration and decision curves are skipped" in html and html.count("data:image/png") == 2


def test_report_input_errors(tmp_path, predictions):
    with pytest.raises(ValueError, match="lacks column"):
        write_report(predictions, tmp_path, score_col="prob", positive="malignant")
    with pytest.raises(ValueError, match="not found"):
        write_report(predictions, tmp_path, positive="cyst")
    few = pd.concat([predictions[predictions.label == "benign"], predictions[predictions.label == "malignant"].head(1)])
    with pytest.raises(ValueError, match="at least 2"):
        write_report(few, tmp_path, positive="malignant")
