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
