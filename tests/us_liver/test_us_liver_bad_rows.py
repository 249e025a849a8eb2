"""A corrupt frame in an AUL folder (real images): evaluate leaves it out, names it, and reports the other
rows exactly as a folder without that row; --strict stops at it; train names it and trains nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.data import BadRowsError
from lesiondx.io import ImageReadError
from lesiondx.us_liver import task
from lesiondx_testdata import EXAMPLES, SHARED_DATA, corrupted_copy

MINI = EXAMPLES / "aul_liver_us_mini"
SECTIONS = ("image", "patient", "levels", "ground_truth_roi", "subgroup_1024_wide", "normal", "roi_proposal")


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> tuple[Path, Path, str]:
    if not (MINI / "labels.csv").is_file():
        pytest.skip(f"example folder {MINI} missing")
    root = tmp_path_factory.mktemp("usl_bad")
    bad, rel = corrupted_copy(MINI, root / "bad", "benign_001")
    clean, _ = corrupted_copy(MINI, root / "clean", "benign_001", drop=True)
    return bad, clean, rel


def test_evaluate_excludes_the_corrupt_frame_and_scores_the_rest(folders, tmp_path):
    bad, clean, rel = folders
    with_bad = task.evaluate("default", bad, tmp_path / "bad")
    without = task.evaluate("default", clean, tmp_path / "clean")
    assert [(e["image_id"], e["file"]) for e in with_bad["excluded"]] == [("benign_001", rel)]
    assert "not a readable image" in with_bad["excluded"][0]["reason"]
    assert with_bad["n_excluded"] == 1 and without["n_excluded"] == 0 and without["excluded"] == []
    # the example frames are AUL frames the shipped model trained on: said first (models/us-liver/training_files.csv)
    assert with_bad["summary"][0].startswith("NOT AN INDEPENDENT TEST: every evaluated row (6) was used to train")
    assert with_bad["seen_in_training"]["n_seen"] == 6 and without["seen_in_training"]["n_seen"] == 6
    assert with_bad["summary"][1] == "1 of 7 rows excluded (unreadable/refused)"
    assert not without["summary"][1].endswith("excluded (unreadable/refused)")
    for section in SECTIONS:
        assert with_bad[section] == without[section], section
    saved = json.loads((tmp_path / "bad" / "metrics.json").read_text())
    assert saved["excluded"] == with_bad["excluded"]
    assert "1 of 7 rows excluded (unreadable/refused)" in (tmp_path / "bad" / "report.html").read_text()


def test_cli_warns_per_excluded_file_and_strict_stops_with_one_line(folders, tmp_path):
    bad, _, rel = folders
    args = ["evaluate", "--task", "us-liver", "--data", str(bad), "--out"]
    res = CliRunner().invoke(app, [*args, str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert f"warning: excluded {rel}: not a readable image" in said
    assert "1 of 7 rows excluded (unreadable/refused)" in said
    strict = CliRunner().invoke(app, [*args, str(tmp_path / "b"), "--strict"])
    lines = strict.output.strip().splitlines()
    assert strict.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert "benign_001.jpg: not a readable image" in lines[0] and "Traceback" not in strict.output
    assert not (tmp_path / "b" / "metrics.json").exists()
    with pytest.raises(ImageReadError, match="benign_001.jpg"):
        task.evaluate("default", bad, tmp_path / "c", strict=True)


def test_evaluate_excludes_a_frame_the_gate_refuses(folders, tmp_path):
    """A CT slice listed as an ultrasound frame is refused by the us-liver gate: excluded with that reason."""
    medseg = SHARED_DATA / "covid_medseg_semiseg"
    ct = sorted((medseg / "train" / "images").glob("*.jpg"))[:1]
    if not ct:
        pytest.skip(f"no MedSeg CT slice under {medseg}")
    bad, _, _ = folders
    folder = tmp_path / "data"
    shutil.copytree(MINI, folder)
    shutil.copy(ct[0], folder / "images" / "benign_010.jpg")
    metrics = task.evaluate("default", folder, tmp_path / "e")
    assert [e["image_id"] for e in metrics["excluded"]] == ["benign_010"]
    assert "refused for task us-liver" in metrics["excluded"][0]["reason"]


def test_train_lists_the_bad_file_and_trains_nothing(folders, tmp_path):
    bad, _, rel = folders
    with pytest.raises(BadRowsError, match="nothing was trained") as caught:
        task.train(bad, tmp_path / "run")
    assert [b.file for b in caught.value.bad] == [rel]
    assert not (tmp_path / "run").exists()
    res = CliRunner().invoke(app, ["train", "--task", "us-liver", "--data", str(bad), "--out", str(tmp_path / "r2")])
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and f"bad file: {rel}: not a readable image" in said and "nothing was trained" in said
    assert "Traceback" not in res.output and not (tmp_path / "r2").exists()


def test_too_few_rows_left_gives_null_metrics_with_the_reason(tmp_path):
    bad, _ = corrupted_copy(MINI, tmp_path / "bad", "benign_001")
    (bad / "images" / "benign_010.jpg").write_bytes(b"")
    metrics = task.evaluate("default", bad, tmp_path / "e")
    assert metrics["n_excluded"] == 2 and metrics["image"] is None and metrics["patient"] is None
    assert "need at least 2 positive and 2 negative" in metrics["not_evaluated"]
    assert metrics["summary"][1] == "2 of 7 rows excluded (unreadable/refused)"
    assert metrics["summary"][2].startswith("not evaluated: after the exclusions")


def test_unknown_label_is_one_line_naming_labels_csv_row_and_column(tmp_path):
    folder = tmp_path / "data"
    shutil.copytree(MINI, folder)
    frame = pd.read_csv(folder / "labels.csv")
    frame.loc[2, "label"] = "Malignnat"  # a typo; "Malignant" is read as malignant (data.manifest)
    frame.to_csv(folder / "labels.csv", index=False)
    for command in ("evaluate", "train"):
        res = CliRunner().invoke(app, [command, "--task", "us-liver", "--data", str(folder), "--out", str(tmp_path / command)])
        said = " ".join(res.output.split())
        assert res.exit_code == 2 and "labels.csv, row 4, column 'label': label(s) task us-liver does not know: " \
                                      "'Malignnat'" in said and "Traceback" not in res.output, res.output
