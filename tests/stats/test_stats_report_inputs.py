"""``lesiondx report`` / ``stats roc`` on prediction tables written by other tools: spreadsheet exports,
empty and percentage scores, one class, header-only files, and the defaults its --help states.

pROC's aSAH table (tests/stats/fixtures/asah.csv) is the other tool's output: its s100b AUC and DeLong
CI are the published pROC figures (0.7314, 0.6301–0.8326)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.stats.scores import read_scores

FIXTURES = Path(__file__).parent / "fixtures"
ASAH = pd.read_csv(FIXTURES / "asah.csv")
AUC, CI = 0.7313685636856369, (0.6301182117616226, 0.8326189156096511)  # pROC 1.18 on aSAH s100b


def _report(path, out, *args):
    result = CliRunner().invoke(app, ["report", str(path), "--out", str(out), "--label", "outcome", "--positive",
                                      "Poor", "--score", "s100b", "--patient", "", "--n-boot", "50", *args])
    return result, (json.loads((out / "metrics.json").read_text()) if result.exit_code == 0 else None)


def test_semicolon_decimal_comma_bom_crlf_export_gives_the_proc_figures(tmp_path):
    path = tmp_path / "asah_excel.csv"
    path.write_bytes(ASAH.to_csv(sep=";", decimal=",", index=False, lineterminator="\r\n").encode("utf-8-sig"))
    assert "0,13" in path.read_text(encoding="utf-8-sig")
    result, m = _report(path, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert m["image"]["auc"] == pytest.approx(AUC, abs=1e-9)
    assert m["image"]["auc_ci"] == pytest.approx(list(CI), abs=1e-9)
    tsv = tmp_path / "asah.tsv"
    ASAH.to_csv(tsv, sep="\t", index=False)
    roc = CliRunner().invoke(app, ["stats", "roc", "--csv", str(tsv), "--label", "outcome", "--positive", "Poor",
                                   "--score", "s100b", "--json"])
    assert roc.exit_code == 0 and json.loads(roc.output)["scores"][0]["auc"] == pytest.approx(AUC, abs=1e-9)


def test_empty_scores_are_left_out_counted_and_named(tmp_path):
    table = ASAH.astype({"s100b": object})
    table.insert(0, "image_id", [f"case{i}" for i in range(len(table))])
    table.loc[[3, 40], "s100b"] = np.nan
    table.loc[50, "s100b"] = "NA"
    table.to_csv(tmp_path / "gaps.csv", index=False)
    result, m = _report(tmp_path / "gaps.csv", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert m["n_missing_score"] == 3 and m["image"]["n"] == len(ASAH) - 3
    assert "3 row(s) without a score in column 's100b' left out (first: image_id case3)" in result.output
    kept = ASAH.drop(index=[3, 40, 50])
    kept.to_csv(tmp_path / "kept.csv", index=False)
    assert m["image"]["auc_ci"] == _report(tmp_path / "kept.csv", tmp_path / "out2")[1]["image"]["auc_ci"]
    assert "without a score" in (tmp_path / "out" / "report.html").read_text()


def test_text_scores_one_line_naming_file_column_and_line(tmp_path):
    table = ASAH.astype({"s100b": object})
    table.loc[4, "s100b"] = "high"
    table.to_csv(tmp_path / "text.csv", index=False)
    result, _ = _report(tmp_path / "text.csv", tmp_path / "out")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "text.csv: column 's100b' has 1 value(s) that are not numbers, first on line 6: 'high'" in result.output


def test_percentage_scores_read_as_probabilities_and_said(tmp_path, predictions):
    table = predictions.assign(score=[f"{100 * s:.6f}%" for s in predictions["score"]])
    table.to_csv(tmp_path / "pct.csv", index=False)
    predictions.assign(score=predictions["score"].round(8)).to_csv(tmp_path / "prob.csv", index=False)
    args = ("--label", "label", "--positive", "malignant", "--score", "score", "--n-boot", "50")
    runs = [CliRunner().invoke(app, ["report", str(tmp_path / f), "--out", str(tmp_path / f[:-4]), *args])
            for f in ("pct.csv", "prob.csv")]
    assert [r.exit_code for r in runs] == [0, 0], runs[0].output
    pct, prob = (json.loads((tmp_path / n / "metrics.json").read_text()) for n in ("pct", "prob"))
    assert pct["image"]["brier"] == pytest.approx(prob["image"]["brier"], abs=1e-9)
    assert pct["image"]["calibration"]["slope"] == pytest.approx(prob["image"]["calibration"]["slope"], abs=1e-6)
    assert "given as percentages" in runs[0].output
    assert pct["image"]["calibration_bins"]["ci_method"] == "Wilson 95% per bin"
    with pytest.raises(ValueError, match="mixes percentages and plain numbers"):
        read_scores(pd.Series(["50%", "0.2"]), "score")


def test_one_class_and_header_only_are_said_plainly(tmp_path):
    ASAH.assign(outcome="Poor").to_csv(tmp_path / "one.csv", index=False)
    result, _ = _report(tmp_path / "one.csv", tmp_path / "out")
    assert result.exit_code == 2 and "only one class: every labelled row is positive (Poor (113))" in result.output
    (tmp_path / "hdr.csv").write_text("outcome,s100b\n")
    result, _ = _report(tmp_path / "hdr.csv", tmp_path / "out")
    assert result.exit_code == 2 and result.output.count("hdr.csv") == 1 and "no rows (a header only)" in result.output


def test_report_help_states_its_defaults():
    result = CliRunner().invoke(app, ["report", "--help"], env={"COLUMNS": "200"})
    text = re.sub(r"\s+", " ", result.output)
    for default in ("(default: label)", "(default: score)", "(default: patient_id)", "(default: mean)", "[500]"):
        assert default in text, default


def test_reversed_scores_warn_and_a_minus_inf_threshold_is_said_not_a_crash(tmp_path):
    """A score where lower means positive: pROC's Youden cut-off is -inf (metrics.json null); the summary
    used to crash formatting it ("internal error (TypeError ...)")."""
    table = ASAH.assign(s100b=-ASAH["s100b"])
    table.to_csv(tmp_path / "neg.csv", index=False)
    result, m = _report(tmp_path / "neg.csv", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert m["image"]["auc"] == pytest.approx(1 - AUC, abs=1e-9)
    assert any("negate the score" in w for w in m["image"]["warnings"])
    pd.DataFrame({"outcome": ["Poor"] * 3 + ["Good"] * 3, "s100b": [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]}).to_csv(
        tmp_path / "rev.csv", index=False)
    result, m = _report(tmp_path / "rev.csv", tmp_path / "out2")
    assert result.exit_code == 0, result.output
    assert m["image"]["threshold"] is None and "threshold -inf (every case called positive)" in result.output
    assert "-inf (every case called positive)" in (tmp_path / "out2" / "report.html").read_text()


def test_patients_with_two_labels_and_repeated_ids_are_named(tmp_path, predictions):
    args = ("--label", "label", "--positive", "malignant", "--n-boot", "50")
    mixed = predictions.copy()
    mixed.loc[mixed["patient_id"] == "p1", "label"] = ["malignant", "benign"]
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "mixed.csv"), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and "column 'label' differs within 'patient_id' for 1 patient(s), first 'p1'" \
        in result.output and "'_y'" not in result.output
    doubled = pd.concat([predictions, predictions.iloc[[0]]])
    doubled.to_csv(tmp_path / "dup.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "dup.csv"), "--out", str(tmp_path / "o2"), *args])
    assert result.exit_code == 0 and "1 image_id(s) appear on more than one row (first: 'p0_0', 2 rows)" \
        in result.output


def test_perfect_separation_says_the_collapsed_ci_is_not_a_ci(tmp_path):
    pd.DataFrame({"outcome": ["Poor"] * 4 + ["Good"] * 4, "s100b": [0.6, 0.7, 0.8, 0.9, 0.1, 0.2, 0.3, 0.4]}).to_csv(
        tmp_path / "sep.csv", index=False)
    result, m = _report(tmp_path / "sep.csv", tmp_path / "out")
    assert result.exit_code == 0 and m["image"]["auc_ci"] == [1.0, 1.0]
    assert "perfectly separated" in result.output and "4 positive and 4 negative images" in result.output


def test_stats_roc_says_it_read_percentages(tmp_path):
    ASAH.assign(s100b=[f"{v}%" for v in ASAH["s100b"]]).to_csv(tmp_path / "pct.csv", index=False)
    args = ["stats", "roc", "--csv", str(tmp_path / "pct.csv"), "--label", "outcome", "--positive", "Poor",
            "--score", "s100b"]
    table, as_json = (CliRunner().invoke(app, args + extra, env={"COLUMNS": "200"}) for extra in ([], ["--json"]))
    assert "note: scores in column 's100b' given as percentages" in table.output
    assert json.loads(as_json.output)["scores"][0]["auc"] == pytest.approx(AUC, abs=1e-9)


def test_true_false_labels_match_positive_true(tmp_path):
    """pandas reads a True/False label column as bool (shown as 1/0); --positive True used to be 'not found'."""
    ASAH.assign(outcome=ASAH["outcome"] == "Poor").to_csv(tmp_path / "tf.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "tf.csv"), "--out", str(tmp_path / "o"), "--label",
                                      "outcome", "--positive", "True", "--score", "s100b", "--n-boot", "20", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["image"]["auc"] == pytest.approx(AUC, abs=1e-9)


def test_images_clustered_in_patients_point_to_the_patient_bootstrap_ci(tmp_path, predictions):
    predictions.to_csv(tmp_path / "p.csv", index=False)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "p.csv"), "--out", str(tmp_path / "o"), "--positive",
                                      "malignant", "--n-boot", "50"])
    m = json.loads((tmp_path / "o" / "metrics.json").read_text())
    lo, hi = m["image"]["auc_bootstrap_ci"]
    said = f"{len(predictions)} images from 40 patients: the DeLong CI treats images as independent"
    assert said in result.output and f"resampling whole patients does not: {lo:.3f} – {hi:.3f}" in result.output
    assert not any("independent" in w for w in m["patient"]["warnings"])


def test_only_negatives_is_one_class_not_a_misnamed_label():
    from lesiondx.stats.levels import select_levels

    with pytest.raises(ValueError, match=r"only one class: every labelled row is 0 \(30\), none is positive \('1'\)"):
        select_levels([0] * 30, "1")
    with pytest.raises(ValueError, match=r"positive label '1' not found; label values are benign \(1\), "
                                         r"malignant \(1\) \(name the positive"):
        select_levels(["benign", "malignant"], "1")


def test_a_threshold_outside_the_scores_is_questioned(tmp_path):
    """--threshold 70 (percent) on scores in [0, 1]: every case negative; the report asks about units."""
    ASAH.assign(s100b=ASAH["s100b"].clip(0, 1)).to_csv(tmp_path / "p.csv", index=False)
    result, m = _report(tmp_path / "p.csv", tmp_path / "o", "--threshold", "70")
    assert result.exit_code == 0 and m["image"]["sensitivity"] == 0.0
    assert "the fixed threshold 70 lies outside the scores (0.03 to 1): every case is called negative" in \
        " ".join(result.output.split())
    assert "is it in the scores' units?" in " ".join(result.output.split())
    # a probability threshold under probabilities that all exceed it: said, without doubting the units
    result, m = _report(tmp_path / "p.csv", tmp_path / "o2", "--threshold", "0.01")
    said = " ".join(result.output.split())
    assert "every case is called positive" in said and "units" not in said


def test_a_blank_line_above_a_text_score_is_counted_in_the_line_named(tmp_path):
    """Lines are the file's (a blank line above the bad row moved it one down; it used to be named one line too early)."""
    table = ASAH.astype({"s100b": object})
    table.loc[4, "s100b"] = "high"
    text = table.to_csv(index=False).splitlines()
    text.insert(2, "")
    (tmp_path / "blank.csv").write_text("\n".join(text) + "\n")
    result, _ = _report(tmp_path / "blank.csv", tmp_path / "out")
    assert result.exit_code == 2 and "first on line 7: 'high'" in result.output
