"""`lesiondx compare`: several models on one ROC / decision curve with paired DeLong tests.
The three score columns are SYNTHETIC (labelled so in the report title)."""

from __future__ import annotations

import base64
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lesiondx.stats import auc_delong
from lesiondx.stats.cli import app

runner = CliRunner()
MODELS = ("model_a", "model_b", "model_c")


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    """SYNTHETIC: 60 patients, 1-3 images each, three correlated scores of different quality, a 'normal' class."""
    rng = np.random.default_rng(3)
    rows = []
    for p in range(60):
        lab = ("malignant", "benign", "normal")[p % 3]
        for i in range(1 + p % 3):
            a = rng.normal(1.2 if lab == "malignant" else 0.0, 1.0)
            b, c = 0.6 * a + rng.normal(0, 0.8), rng.normal(0.4 if lab == "malignant" else 0.0, 1.0)
            rows.append({"image_id": f"p{p}_{i}", "patient_id": f"p{p}", "label": lab,
                         **{m: float(1 / (1 + np.exp(-v))) for m, v in zip(MODELS, (a, b, c))}})
    return pd.DataFrame(rows)


def _compare(*args):
    return runner.invoke(app, ["compare", *args, "--positive", "malignant", "--negative", "benign",
                               "--title", "SYNTHETIC comparison"])


def test_three_models_render_and_match_stats_roc(tmp_path, synthetic):
    csv = tmp_path / "three.csv"
    synthetic.to_csv(csv, index=False)
    res = _compare(str(csv), *itertools.chain(*(("--score", m) for m in MODELS)), "--out", str(tmp_path / "c"))
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert m["levels"]["excluded"] == {"normal": int((synthetic.label == "normal").sum())}
    assert [r["name"] for r in m["image"]["models"]] == list(MODELS) and len(m["image"]["paired_delong"]) == 3
    assert m["patient"]["aggregation"] == "mean" and m["patient"]["n"] == 40
    for t in m["image"]["paired_delong"]:  # each pair equals `stats roc` with the same two columns
        roc = runner.invoke(app, ["roc", "--csv", str(csv), "--label", "label", "--positive", "malignant",
                                  "--negative", "benign", "--score", t["model_1"], "--score", t["model_2"], "--json"])
        d = json.loads(roc.output)["delong"]
        assert (t["p"], t["auc_diff"], t["z"]) == pytest.approx((d["p"], d["auc_diff"], d["z"]), abs=1e-12)
    html = (tmp_path / "c" / "compare.html").read_text()
    assert "SYNTHETIC comparison" in html and "model_a − model_c" in html and "Per patient (mean of image scores)" in html
    assert not re.search(r'(src|href)="(https?:|//|file:)', html)
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(imgs) == 4  # ROC and decision curve, per image and per patient
    for name in ("roc_image", "decision_image", "roc_patient", "decision_patient"):
        assert (tmp_path / "c" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert base64.b64decode(imgs[0]) == (tmp_path / "c" / "roc_image.png").read_bytes()
    assert "p = " in res.output and "paired DeLong" in res.output


def test_patient_rule_max_and_several_csvs_joined_on_image_id(tmp_path, synthetic):
    paths = []
    for k, m in enumerate(MODELS):
        part = synthetic.sample(frac=1.0, random_state=k).rename(columns={m: "score"})
        if k == 2:
            part = part[part.image_id != "p0_0"]  # one image missing from the third CSV
        (tmp_path / m).mkdir()
        paths.append(tmp_path / m / "predictions.csv")
        part[["image_id", "patient_id", "label", "score"]].to_csv(paths[-1], index=False)
    res = _compare(*map(str, paths), "--out", str(tmp_path / "j"), "--patient-rule", "max", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)
    assert m["models"] == list(MODELS)  # named after their folders
    kept = synthetic[(synthetic.image_id != "p0_0") & (synthetic.label != "normal")]
    assert m["image"]["n"] == len(kept) and any("left out" in n for n in m["notes"])
    per = kept.groupby("patient_id").agg(y=("label", "first"), s=("model_b", "max"))
    assert m["patient"]["aggregation"] == "max"
    assert m["patient"]["models"][1]["auc"] == pytest.approx(auc_delong(per.y.eq("malignant"), per.s).auc)


def test_compare_errors(tmp_path, synthetic):
    csv = tmp_path / "s.csv"
    synthetic.to_csv(csv, index=False)
    one = _compare(str(csv), "--score", "model_a", "--out", str(tmp_path / "x"))
    assert one.exit_code == 2 and "at least two" in one.output
    bad = synthetic.copy()
    bad.loc[0, "label"] = "benign" if bad.loc[0, "label"] != "benign" else "malignant"
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    synthetic.to_csv(tmp_path / "a" / "p.csv", index=False)
    bad.to_csv(tmp_path / "b" / "p.csv", index=False)
    differ = _compare(str(tmp_path / "a" / "p.csv"), str(tmp_path / "b" / "p.csv"), "--score", "model_a",
                      "--out", str(tmp_path / "y"))
    assert differ.exit_code == 2 and "labels differ" in differ.output


def test_rows_without_a_score_are_left_out_of_every_model(tmp_path, synthetic):
    df = synthetic.copy()
    df.loc[df.label == "malignant", "model_b"] = df.loc[df.label == "malignant", "model_b"].mask(
        np.arange((df.label == "malignant").sum()) < 2)
    csv = tmp_path / "nan.csv"
    df.to_csv(csv, index=False)
    res = _compare(str(csv), "--score", "model_a", "--score", "model_b", "--out", str(tmp_path / "n"), "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)
    assert m["missing_scores"] == {"model_b": 2} and m["image"]["n_pos"] == int((df.label == "malignant").sum()) - 2


def test_a_spreadsheet_export_with_percentages_compares_like_the_plain_table(tmp_path, synthetic):
    """Semicolon-separated, decimal commas, one model's scores as '83.1%': the same ΔAUC, said; text is named."""
    synthetic.to_csv(tmp_path / "plain.csv", index=False)
    export = synthetic.assign(model_b=[f"{100 * v:.10f}%" for v in synthetic["model_b"]])
    export.to_csv(tmp_path / "export.csv", sep=";", decimal=",", index=False)
    runs = [_compare(str(tmp_path / f"{n}.csv"), "--score", "model_a", "--score", "model_b", "--out",
                     str(tmp_path / n), "--json") for n in ("plain", "export")]
    assert [r.exit_code for r in runs] == [0, 0], runs[1].output
    plain, got = (json.loads(r.output) for r in runs)
    assert got["image"]["paired_delong"][0]["p"] == pytest.approx(plain["image"]["paired_delong"][0]["p"], abs=1e-9)
    assert any("given as percentages" in n for n in got["notes"])
    text = synthetic.astype({"model_b": object})
    text.loc[2, "model_b"] = "high"
    text.to_csv(tmp_path / "text.csv", index=False)
    bad = _compare(str(tmp_path / "text.csv"), "--score", "model_a", "--score", "model_b", "--out", str(tmp_path / "t"))
    assert bad.exit_code == 2 and "column 'model_b' has 1 value(s) that are not numbers, first on line 4" in bad.output


def test_text_in_a_joined_csv_is_named_by_its_own_file_and_line(tmp_path, synthetic):
    """Several CSVs joined on image_id, rows in another order, a blank line above the bad row: the error names
    the file it is in and that file's line (was: the joined table's row + 2)."""
    paths = []
    for k, m in enumerate(("model_a", "model_b")):
        part = synthetic.sample(frac=1.0, random_state=k).rename(columns={m: "score"})[["image_id", "label", "score"]]
        part = part.astype({"score": object}).reset_index(drop=True)
        paths.append(tmp_path / f"{m}.csv")
        if m == "model_b":
            part.loc[9, "score"] = "high"
        text = part.to_csv(index=False).splitlines()
        text.insert(3, "")  # a blank line after data line 3: the bad row (data row 9) sits on file line 12
        paths[-1].write_text("\n".join(text) + "\n")
    bad = _compare(*map(str, paths), "--out", str(tmp_path / "j"))
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "not numbers, first on model_b.csv line 12: 'high'" in bad.output


def test_a_label_that_varies_within_a_patient_is_named_with_the_remedy(tmp_path, synthetic):
    """Per-slice truth (as in ct-covid's predictions.csv) is not one label per patient: the error names the user's
    column and says --patient '' (was: "label column '_y' is not constant within 'patient_id'")."""
    table = synthetic.copy()
    first = table.index[table["patient_id"] == "p1"]  # p1: 2 benign images, one of them relabelled
    table.loc[first[0], "label"] = "benign" if table.loc[first[0], "label"] == "malignant" else "malignant"
    table.to_csv(tmp_path / "s.csv", index=False)
    res = _compare(str(tmp_path / "s.csv"), "--score", "model_a", "--score", "model_b", "--out", str(tmp_path / "x"))
    text = " ".join(res.output.split())
    assert res.exit_code == 2 and "column 'label' differs within 'patient_id' for 1 patient(s), first 'p1'" in text, text
    assert "per-patient comparison (without one: --patient '')" in text and "_y" not in text
    ok = _compare(str(tmp_path / "s.csv"), "--score", "model_a", "--score", "model_b", "--out", str(tmp_path / "y"),
                  "--patient", "")
    assert ok.exit_code == 0, ok.output
