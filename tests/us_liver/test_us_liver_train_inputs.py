"""What a site's own folder does to ``lesiondx train --task us-liver`` (real AUL frames from the bundled excerpt,
under an ALTERED labels.csv): each bad folder or config stops before anything is trained with one line naming the
file, row/column or key and the fix; an interrupted run leaves no run directory; a finished run says how to
reproduce it (run.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.config import ConfigError
from lesiondx.data import ManifestError
from lesiondx.models import load_checkpoint
from lesiondx.us_liver import task
from lesiondx.us_liver.config import load_us_config
from lesiondx_testdata import EXAMPLES

MINI = EXAMPLES / "aul_liver_us_mini"
TINY = "folds: 3\nseg_epochs: 1\nseg_size: 64\nlevels: [head]\nprobe_cs: [0.1]\naugment_copies: 0\ntta_copies: 0\n"


def altered_folder(root: Path, edit=lambda rows: rows) -> Path:
    """ALTERED: the bundled AUL excerpt's images and masks (symlinked) under a labels.csv changed by ``edit``."""
    if not (MINI / "labels.csv").is_file():
        pytest.skip(f"example folder {MINI} missing")
    root.mkdir(parents=True)
    for sub in ("images", "masks"):
        (root / sub).symlink_to(MINI / sub)
    edit(pd.read_csv(MINI / "labels.csv", dtype=str)).to_csv(root / "labels.csv", index=False)
    return root


def config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY + extra)
    return path


@pytest.mark.parametrize("extra, key, allowed", [
    ("crop_size: -5\n", "crop_size", "a whole number of at least 1"),
    ("augment_copies: -1\n", "augment_copies", "a whole number of at least 0"),
    ("dropout: 1.5\n", "dropout", "a number from 0 to 1"),
    ("lr: 0\n", "lr", "a number above 0"),
    ("probe_cs: [0.1, -1]\n", "probe_cs", "numbers above 0"),
])
def test_an_out_of_range_value_names_the_key_and_the_allowed_values(tmp_path, extra, key, allowed):
    with pytest.raises(ConfigError, match=rf"tiny.yaml: {key} must be .*{allowed}"):
        load_us_config(config(tmp_path, extra))


def test_a_folder_without_mask_columns_is_refused_naming_them(tmp_path):
    folder = altered_folder(tmp_path / "no_masks", lambda rows: rows[["image_id", "label", "image", "patient_id"]])
    with pytest.raises(ManifestError, match=r"labels.csv, column 'lesion_mask'.*lesion_mask, liver_mask, sector_mask "
                                            r"missing"):
        task.train(folder, tmp_path / "run", config(tmp_path))
    assert not (tmp_path / "run").exists()


def test_an_image_listed_under_two_labels_is_refused_naming_both_rows(tmp_path):
    def twice(rows: pd.DataFrame) -> pd.DataFrame:
        again = rows.iloc[[0]].assign(image_id="again", label="malignant")
        return pd.concat([rows, again], ignore_index=True)

    folder = altered_folder(tmp_path / "twice", twice)
    with pytest.raises(ManifestError, match=r"row 9, column 'image'.*benign_001.jpg is listed under two labels "
                                            r"\('benign', 'malignant'\), also on row 2"):
        task.train(folder, tmp_path / "run", config(tmp_path))


def test_a_site_spelling_of_the_labels_names_row_known_labels_and_the_fix(tmp_path):
    def site_labels(rows: pd.DataFrame) -> pd.DataFrame:
        rows["label"] = rows["label"].map({"benign": "benign lesion", "malignant": "HCC", "normal": "normal"})
        return rows

    folder = altered_folder(tmp_path / "site", site_labels)
    with pytest.raises(ManifestError, match=r"row 2, column 'label'.*'HCC', 'benign lesion' \(known: benign, "
                                            r"malignant, normal\); write those rows' labels as known ones"):
        task.train(folder, tmp_path / "run", config(tmp_path))


def test_a_label_with_fewer_patients_than_folds_is_named_before_training(tmp_path):
    folder = altered_folder(tmp_path / "tiny", lambda rows: rows[rows["image_id"] != rows.query(
        "label == 'malignant'")["image_id"].iloc[0]])
    with pytest.raises(ValueError, match=r"labels.csv: too few patients for 3 folds: 'malignant' has 2 .*add "
                                         r"patients of that label$"):
        task.train(folder, tmp_path / "run", config(tmp_path))
    assert not (tmp_path / "run").exists()


def test_an_existing_run_directory_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "us_liver.pt").write_text("an earlier run")
    with pytest.raises(ValueError, match="run directory already exists and is not empty"):
        task.train(altered_folder(tmp_path / "ok"), run, config(tmp_path))
    assert (run / "us_liver.pt").read_text() == "an earlier run"


def test_an_interrupted_run_leaves_nothing_that_passes_for_a_model(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(task, "_segmenter", interrupt)  # Ctrl-C after config.yaml and data_hash.txt are written
    folder = altered_folder(tmp_path / "ok")
    result = CliRunner().invoke(app, ["train", "--task", "us-liver", "--data", str(folder), "--out",
                                      str(tmp_path / "run"), "--config", str(config(tmp_path))])
    assert result.exit_code == 130
    assert "interrupted, no run written (training does not resume: rerun the same command)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok", "tiny.yaml"]  # neither run/ nor run.partial/


def test_a_finished_run_records_its_command_data_seed_and_versions_and_repeats_the_folder_warnings(tmp_path):
    torch.set_num_threads(1)
    folder = altered_folder(tmp_path / "no_pid", lambda rows: rows.drop(columns="patient_id"))
    result = CliRunner().invoke(app, ["train", "--task", "us-liver", "--data", str(folder), "--out",
                                      str(tmp_path / "run"), "--config", str(config(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "labels.csv: no patient_id column: each image is treated as its own patient" in result.output
    run = tmp_path / "run"
    record = json.loads((run / "run.json").read_text())
    assert record["data"] == str(folder.resolve()) and record["seed"] == 0
    assert record["data_hash"] == (run / "data_hash.txt").read_text().strip()
    assert {"python", "lesiondx", "torch", "numpy"} <= set(record["versions"])
    assert record["data_warnings"] == ["no patient_id column: each image is treated as its own patient"]
    # the model's name (us-liver-dcnn-us-DATE-hash) carries the day it was trained, not the shipped model's day
    assert load_checkpoint(run / "us_liver.pt")[1]["date"] == record["finished"][:10]
    assert not (tmp_path / "run.partial").exists()


def test_every_missing_mask_file_is_named_with_its_row_in_one_message(tmp_path):
    def lose_two(rows: pd.DataFrame) -> pd.DataFrame:
        rows.loc[[0, 3], "lesion_mask"] = ["masks/mass/gone_a.png", "masks/mass/gone_b.png"]
        return rows

    folder = altered_folder(tmp_path / "lost", lose_two)
    with pytest.raises(ManifestError, match=r"2 lesion_mask file\(s\) missing: row 2 masks/mass/gone_a.png, row 5 "
                                            r"masks/mass/gone_b.png \(put the files there"):
        task.train(folder, tmp_path / "run", config(tmp_path))


def test_an_untrained_roi_segmenter_is_said_loudly_and_recorded(tmp_path):
    """seg_epochs: 0 without seg_from keeps the segmenter's random weights: train says so (stderr, at the end of
    the CLI output) and run.json records it; with a seg_from checkpoint seg_epochs: 0 reuses it and says nothing."""
    torch.set_num_threads(1)
    folder = altered_folder(tmp_path / "ok")
    untrained = tmp_path / "untrained.yaml"
    untrained.write_text(TINY.replace("seg_epochs: 1", "seg_epochs: 0"))
    result = CliRunner().invoke(app, ["train", "--task", "us-liver", "--data", str(folder), "--out",
                                      str(tmp_path / "run"), "--config", str(untrained)])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "warning: seg_epochs: 0 without seg_from: the ROI segmenter is NOT TRAINED (random weights)" in said
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert len(record["run_warnings"]) == 1 and "NOT TRAINED" in record["run_warnings"][0]
    reused = tmp_path / "reused.yaml"
    reused.write_text(untrained.read_text() + f"seg_from: {tmp_path / 'run' / 'us_liver.pt'}\n")
    task.train(folder, tmp_path / "run2", reused)
    assert json.loads((tmp_path / "run2" / "run.json").read_text())["run_warnings"] == []
