"""``lesiondx train --task ct-liver`` writes its run the way every task does (lesiondx.models.training.training_run):
into OUT.partial, renamed at the end with run.json; Ctrl-C leaves nothing (SYNTHETIC multiphase phantoms)."""

from __future__ import annotations

import json

import torch
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx.ct_liver import recipe

TINY = "epochs: 1\nbatch_size: 16\ncrop_px: 64\nclassify_px: 96\n"


def _train(data, run, config):
    return CliRunner().invoke(app, ["train", "--task", "ct-liver", "--data", str(data), "--out", str(run),
                                    "--config", str(config)])


def test_an_interrupted_ct_liver_run_leaves_no_run_directory(synthetic_multiphase, tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe, "train_classifier", interrupt)  # Ctrl-C after config.yaml and train.log exist
    (tmp_path / "tiny.yaml").write_text(TINY)
    result = _train(synthetic_multiphase[0], tmp_path / "run", tmp_path / "tiny.yaml")
    assert result.exit_code == 130
    assert "interrupted, no run written (training does not resume: rerun the same command)" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # neither run/ nor run.partial/


def test_a_finished_ct_liver_run_records_run_json_under_its_final_name(synthetic_multiphase, tmp_path):
    torch.set_num_threads(1)
    data = synthetic_multiphase[0]
    (tmp_path / "tiny.yaml").write_text(TINY)
    run = tmp_path / "run"
    result = _train(data, run, tmp_path / "tiny.yaml")
    assert result.exit_code == 0, result.output
    record = json.loads((run / "run.json").read_text())
    assert record["data"] == str(data.resolve()) and record["seed"] == 0
    assert record["data_hash"] == (run / "data_hash.txt").read_text().strip() and len(record["data_hash"]) == 64
    assert {"python", "lesiondx", "torch", "numpy"} <= set(record["versions"])
    meta = json.loads((run / "meta.json").read_text())
    assert meta["version"].startswith("run-") and (run / "classifier.pt").is_file()  # not 'run.partial-DATE'
    assert not (tmp_path / "run.partial").exists()
