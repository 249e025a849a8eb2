"""`lesiondx stats` sub-app: roc, readers, report."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from lesiondx.stats.cli import app, report_command

runner = CliRunner()


def _roc(*args):
    return runner.invoke(app, ["roc", *args])


def test_roc_json_matches_proc(proc_ref, floats):
    ref = proc_ref["asah"]
    res = _roc(
        "--csv",
        "tests/stats/fixtures/asah.csv",
        "--label",
        "outcome",
        "--positive",
        "Poor",
        "--score",
        "s100b",
        "--score",
        "wfns",
        "--json",
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for got, want in zip(out["scores"], ref["rocs"][:2]):
        assert got["name"] == want["score"]
        assert (got["auc"], got["ci_low"], got["ci_high"]) == pytest.approx(
            (want["auc"], want["ci_low"], want["ci_high"]), abs=1e-9
        )
        assert got["youden"]["threshold"] == pytest.approx(floats(want["youden_thresholds"])[0])
        assert (got["n_pos"], got["n_neg"]) == (41, 72)
    pr = ref["paired"][0]
    assert (out["delong"]["z"], out["delong"]["p"]) == pytest.approx((pr["z"], pr["p"]), abs=1e-9)


def test_roc_table_output_single_score():
    res = _roc(
        "--csv", "tests/stats/fixtures/ties_table.csv", "--label", "label", "--positive", "1", "--score", "score1"
    )
    assert res.exit_code == 0 and "0.8378" in res.output and "Paired" not in res.output


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--label", "nope", "--positive", "Poor", "--score", "s100b"], "column 'nope' not found"),
        (["--label", "outcome", "--positive", "Poor", "--score", "gender"], "column 'gender'"),
        (["--label", "gender", "--positive", "Poor", "--score", "s100b"], "column 'gender'"),
    ],
)
def test_roc_errors_exit_2_naming_file_and_column(args, needle):
    res = _roc("--csv", "tests/stats/fixtures/asah.csv", *args)
    assert res.exit_code == 2
    assert "asah.csv" in res.output and needle in res.output


def test_roc_one_class_only(tmp_path):
    p = tmp_path / "one.csv"
    pd.DataFrame({"y": [1, 1, 1], "s": [0.1, 0.2, 0.3]}).to_csv(p, index=False)
    res = _roc("--csv", str(p), "--label", "y", "--positive", "1", "--score", "s")
    assert res.exit_code == 2 and "one.csv" in res.output and "'y'" in res.output


def test_readers_json(tmp_path, reader_df):
    p = tmp_path / "readers.csv"
    reader_df.to_csv(p, index=False)
    res = runner.invoke(app, ["readers", "--csv", str(p), "--json", "--n-boot", "200"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert {"accuracy", "kappa", "mcnemar", "times"} <= set(out) and len(out["accuracy"]) == 6
    table = runner.invoke(app, ["readers", "--csv", str(p), "--n-boot", "200"])
    assert table.exit_code == 0 and "McNemar" in table.output


def test_report_command_function_and_cli(tmp_path, predictions):
    csv = tmp_path / "preds.csv"
    predictions.to_csv(csv, index=False)
    res = report_command(csv, tmp_path / "a", positive="malignant", n_boot=100)
    assert res.metrics["image"]["n"] == len(predictions)
    cli = runner.invoke(
        app,
        [
            "report",
            str(csv),
            "--out",
            str(tmp_path / "b"),
            "--positive",
            "malignant",
            "--stratum",
            "centre",
            "--n-boot",
            "100",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert (tmp_path / "b" / "report.html").is_file()
    bad = runner.invoke(app, ["report", str(csv), "--out", str(tmp_path / "c"), "--score", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output


EVAL_CSV = "tests/stats/fixtures/us_liver_mini_predictions.csv"  # written by `lesiondx evaluate --task us-liver`


def test_paired_roc_on_evaluate_csv_leaves_out_empty_scores_and_counts_them():
    """evaluate's CSV has no ground-truth-ROI score for the normal frame (no outline): the paired test
    runs on the rows with both scores and says how many it left out."""
    from lesiondx.stats import delong_paired_test

    args = ["--csv", EVAL_CSV, "--label", "label", "--positive", "malignant", "--negative", "benign",
            "--negative", "normal", "--score", "score", "--score", "score_gt_roi", "--json"]
    res = _roc(*args)
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["missing_scores"] == {"score_gt_roi": 1} and out["levels"]["excluded"] == {}
    df = pd.read_csv(EVAL_CSV).dropna(subset=["score_gt_roi"])
    ref = delong_paired_test(df["label"].eq("malignant"), df["score"], df["score_gt_roi"])
    assert out["delong"]["p"] == pytest.approx(ref.p, abs=1e-12) and out["scores"][0]["n_neg"] == 3
    table = _roc(*args[:-1])
    assert table.exit_code == 0 and "score_gt_roi (1)" in table.output


def test_roc_needs_negative_when_there_are_three_labels():
    res = _roc("--csv", EVAL_CSV, "--label", "label", "--positive", "malignant", "--score", "score")
    assert res.exit_code == 2 and "--negative" in res.output and "normal (1)" in res.output


def test_report_reads_evaluate_settings_and_options_override(tmp_path):
    settings = json.loads(open(EVAL_CSV.replace(".csv", ".settings.json")).read())
    same = runner.invoke(app, ["report", EVAL_CSV, "--out", str(tmp_path / "a"), "--n-boot", "50"])
    assert same.exit_code == 0, same.output
    assert "excluded: normal (1)" in same.output and "fixed before" in same.output and not same.output.startswith("{")
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["image"]["n"] == 6 and m["image"]["threshold"] == settings["threshold"]
    assert m["image"]["threshold_chosen_on_these_data"] is False and m["levels"]["excluded"] == {"normal": 1}
    seven = runner.invoke(app, ["report", EVAL_CSV, "--out", str(tmp_path / "b"), "--negative", "benign",
                                "--negative", "normal", "--threshold", "0.5", "--n-boot", "50", "--json"])
    assert seven.exit_code == 0, seven.output
    m7 = json.loads(seven.output)
    assert m7["image"]["n"] == 7 and m7["image"]["threshold_source"] == "fixed before this evaluation: given with --threshold"


def test_report_without_settings_needs_levels(tmp_path):
    csv = tmp_path / "p.csv"
    pd.read_csv(EVAL_CSV).to_csv(csv, index=False)  # no settings file beside this copy
    res = runner.invoke(app, ["report", str(csv), "--out", str(tmp_path / "r"), "--positive", "malignant"])
    assert res.exit_code == 2 and "p.csv" in res.output and "--negative" in res.output
    ok = runner.invoke(app, ["report", str(csv), "--out", str(tmp_path / "r"), "--positive", "malignant",
                             "--negative", "benign", "--n-boot", "50"])
    assert ok.exit_code == 0, ok.output
    assert "chosen on these data (Youden, optimistic)" in ok.output and "warning: only 3 positive" in ok.output


def test_roc_table_in_a_log_shows_the_whole_ci():
    """Output to a file or pipe (not a terminal): the table is 120 columns wide, the CI is not cut (was
    ``0.7374–0.9…`` at rich's default 80 columns)."""
    res = _roc("--csv", "tests/stats/fixtures/ties_table.csv", "--label", "label", "--positive", "1",
               "--score", "score1", "--score", "score2")
    assert res.exit_code == 0 and "0.7374–0.9382" in res.output and "0.6035–0.8645" in res.output, res.output
    assert "z = 1.828, p = 0.06758" in res.output
