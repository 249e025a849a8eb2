"""lesiondx.models.training.training_run: the one staged run folder + run.json every task's train writes into."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from lesiondx.data import data_hash
from lesiondx.models.training import training_run


def _folder(tmp_path):
    """SYNTHETIC: a labels.csv and two byte files standing in for images."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "labels.csv").write_text("image_id,label,image\na,x,a.bin\nb,y,b.bin\n")
    for name in "ab":
        (data / f"{name}.bin").write_bytes(name.encode() * 10)
    return data, pd.DataFrame({"image": [str(data / "a.bin"), str(data / "b.bin")]})


def test_a_finished_block_is_renamed_with_its_hash_seed_and_warnings_recorded(tmp_path):
    data, frame = _folder(tmp_path)
    with training_run(tmp_path / "run", data=data, seed=7, warnings=("no patient_id column",)) as run:
        assert run.path == tmp_path / "run.partial" and run.name == "run"
        run.hash_data(data, frame)
        run.warn("a part of the model is untrained")
        (run.path / "model.pt").write_text("weights")
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["data_hash"] == data_hash(data, frame) == (tmp_path / "run" / "data_hash.txt").read_text().strip()
    assert record["seed"] == 7 and record["data_warnings"] == ["no patient_id column"]
    assert record["run_warnings"] == ["a part of the model is untrained"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "run"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_or_failed_block_leaves_no_run(tmp_path, stop):
    data, frame = _folder(tmp_path)
    with pytest.raises(stop):
        with training_run(tmp_path / "run", data=data, seed=0) as run:
            run.hash_data(data, frame)
            raise stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_block_that_never_hashes_its_rows_writes_no_run(tmp_path):
    data, _ = _folder(tmp_path)
    with pytest.raises(RuntimeError, match="never hashed"):
        with training_run(tmp_path / "run", data=data, seed=0):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
