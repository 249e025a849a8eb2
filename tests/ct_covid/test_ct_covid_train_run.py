"""``lesiondx train --task ct-covid`` writes its run the way every task does (lesiondx.models.training.training_run):
into OUT.partial, renamed at the end with run.json; Ctrl-C leaves nothing; --skip-bad skips a missing slice."""

from __future__ import annotations

import json

import pandas as pd
import torch
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.ct_covid import train as train_module

TINY = "input_size: 64\nepochs: 1\nbatch_size: 2\nval_fraction: 0.34\nencoder: efficientnet_lite0\nmin_area: 4\n"


def _train(data, run, config, *extra):
    return CliRunner().invoke(app, ["train", "--task", "ct-covid", "--data", str(data), "--out", str(run),
                                    "--config", str(config), *extra])


def test_an_interrupted_ct_covid_run_leaves_no_run_directory(medseg_excerpt, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    data, _ = medseg_excerpt("train", 3)
    monkeypatch.setattr(train_module, "train_segmenter", interrupt)  # Ctrl-C after config.yaml is written
    (tmp_path / "tiny.yaml").write_text(TINY)
    result = _train(data, tmp_path / "run", tmp_path / "tiny.yaml")
    assert result.exit_code == 130
    assert "interrupted, no run written (training does not resume: rerun the same command)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["medseg", "tiny.yaml"]  # neither run/ nor run.partial/


def test_a_finished_ct_covid_run_records_run_json_and_skips_a_missing_slice(medseg_excerpt, tmp_path):
    """Real MedSeg slices (5 rows, one slice file deleted in the copy: ALTERED), one epoch at 64 px."""
    torch.set_num_threads(1)
    data, frame = medseg_excerpt("train", 5)
    gone = frame["image"].iloc[2]
    (data / gone).unlink()
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = tmp_path / "run"
    result = _train(data, run, tmp_path / "tiny.yaml", "--skip-bad")
    assert result.exit_code == 0, result.output
    skipped = pd.read_csv(run / "skipped_rows.csv")
    assert skipped[["image_id", "file", "reason", "row"]].values.tolist() == [
        [frame["image_id"].iloc[2], gone, "file not found", 4]]
    record = json.loads((run / "run.json").read_text())
    assert record["data"] == str(data.resolve()) and record["seed"] == 0
    assert record["data_hash"] == (run / "data_hash.txt").read_text().strip() and len(record["data_hash"]) == 64
    assert {"python", "lesiondx", "torch", "numpy"} <= set(record["versions"])
    assert (run / "model.pt").is_file() and (run / "model.onnx").is_file()
    assert not (tmp_path / "run.partial").exists()
    again = _train(data, run, tmp_path / "tiny.yaml", "--skip-bad")  # a finished run is never overwritten
    assert again.exit_code != 0 and "run directory already exists and is not empty" in " ".join(again.output.split())
