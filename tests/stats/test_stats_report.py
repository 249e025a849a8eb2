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


def _with_normal(predictions: pd.DataFrame) -> pd.DataFrame:
    """The fixture plus 5 'normal' images of new patients (a third class that must not become negative)."""
    extra = pd.DataFrame({"image_id": [f"n{i}" for i in range(5)], "patient_id": [f"n{i}" for i in range(5)],
                          "label": "normal", "score": [0.9, 0.1, 0.2, 0.95, 0.3], "centre": "A", "size_mm": 5.0})
    return pd.concat([predictions, extra], ignore_index=True)


def test_other_labels_are_excluded_and_counted_never_negative(tmp_path, predictions):
    df = _with_normal(predictions)
    with pytest.raises(ValueError, match="--negative"):
        write_report(df, tmp_path / "a", positive="malignant", n_boot=50)
    m = write_report(df, tmp_path / "b", positive="malignant", negative="benign", n_boot=50).metrics
    assert m["levels"] == {"positive": ["malignant"], "negative": ["benign"], "excluded": {"normal": 5},
                           "n_excluded": 5}
    y = (predictions["label"] == "malignant").to_numpy()
    assert m["image"]["n"] == len(predictions) and m["image"]["auc"] == pytest.approx(auc_delong(y, predictions["score"]).auc)
    assert m["n_patients"] == 40
    html = (tmp_path / "b" / "report.html").read_text()
    assert "excluded: <b>normal (5)</b>" in html
    both = write_report(df, tmp_path / "c", positive="malignant", negative=["benign", "normal"], n_boot=50).metrics
    assert both["image"]["n"] == len(df) and both["levels"]["excluded"] == {}


def test_fixed_and_chosen_thresholds_are_labelled(tmp_path, predictions):
    chosen = write_report(predictions, tmp_path / "a", positive="malignant", n_boot=50).metrics["image"]
    assert chosen["threshold_chosen_on_these_data"] is True and "optimistic" in chosen["threshold_source"]
    fixed = write_report(predictions, tmp_path / "b", positive="malignant", threshold=0.5, n_boot=50,
                         threshold_source="the model's shipped threshold").metrics
    for level in ("image", "patient"):
        m = fixed[level]
        assert m["threshold"] == 0.5 and m["threshold_chosen_on_these_data"] is False
        assert m["threshold_source"] == "fixed before this evaluation: the model's shipped threshold"
        assert m["youden"]["chosen_on_these_data"] is True
    assert "Threshold, chosen on these data (Youden, optimistic)" in (tmp_path / "a" / "report.html").read_text()
    html = (tmp_path / "b" / "report.html").read_text()
    assert "Threshold, fixed before" in html and "Youden threshold, chosen on these data (optimistic)" in html


def test_small_n_warning(tmp_path, predictions):
    big = write_report(predictions, tmp_path / "a", positive="malignant", n_boot=50).metrics
    small = [w for w in big["image"]["warnings"] if "unreliable" in w]  # others: images clustered in patients
    assert small == []  # 40 malignant and 60 benign images
    few = pd.concat([predictions[predictions.label == "malignant"].head(4), predictions[predictions.label == "benign"].head(12)])
    m = write_report(few, tmp_path / "b", positive="malignant", n_boot=50).metrics
    assert [w for w in m["image"]["warnings"] if "unreliable" in w] == [
        "only 4 positive and 12 negative images: confidence intervals are unreliable (fewer than 10 per class)"]
    assert "confidence intervals are unreliable" in (tmp_path / "b" / "report.html").read_text()


def test_calibration_slope_and_intercept_in_metrics_and_html(tmp_path, predictions):
    m = write_report(predictions, tmp_path, positive="malignant", n_boot=50).metrics["image"]["calibration"]
    y = (predictions["label"] == "malignant").to_numpy(float)
    lp = np.log(predictions["score"] / (1 - predictions["score"])).to_numpy()
    import statsmodels.api as sm

    ref = sm.Logit(y, sm.add_constant(lp)).fit(disp=0)
    assert m["slope"] == pytest.approx(ref.params[1], rel=1e-6)
    assert m["slope_ci"] == pytest.approx(list(np.asarray(ref.conf_int())[1]), rel=1e-6)
    html = (tmp_path / "report.html").read_text()
    assert "Calibration slope (1 = ideal)" in html and f"{m['slope']:.2f}" in html


def test_figures_are_png_files_beside_the_report_and_the_roc_states_its_ci(written):
    """A ROC for a slide or a paper without cutting it out of the HTML (was: embedded only); its legend says which
    CI it gives (was: 'AUC 0.xxx (a-b)')."""
    from PIL import Image

    _, res = written
    figures = res.metrics["figures"]
    assert set(figures) == {f"{kind}_{level}" for kind in ("roc", "confusion", "calibration", "decision")
                            for level in ("image", "patient")}
    for name in figures.values():
        with Image.open(res.out_dir / name) as png:
            assert png.format == "PNG" and png.width > 300


def test_roc_legend_names_the_ci_level_and_method():
    from lesiondx.stats import auc_delong, roc_curve
    from lesiondx.stats.plots import RocSeries, roc_figure

    y, s = np.array([0, 0, 1, 1, 0, 1]), np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    a = auc_delong(y, s)
    fig = roc_figure([RocSeries("model", roc_curve(y, s), a)])
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert f"model: AUC {a.auc:.3f} (95% CI {a.ci_low:.3f}–{a.ci_high:.3f}, DeLong)" in texts, texts
