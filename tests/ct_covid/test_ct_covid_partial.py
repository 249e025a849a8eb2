"""evaluate and predict analyse a chest–abdomen scan the same way: its chest part only, said in metrics.json and the
report (ALTERED copy of the real CT-MD P002 series with lung-free slices added below it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from lesiondx.ct_covid import task
from lesiondx_testdata import shared_dataset

N_BELOW = 120  # lung-free slices added: lungs on ~45 % of the slices, whole lungs inside (flagged, not refused)


def _altered_chest_abdomen(ctmd_folder: Path, folder: Path) -> Path:
    """ALTERED copy: P002's 133 chest slices plus ``N_BELOW`` copies of its lowest (lung-free) slice 2 mm apart
    below it, as one CT-MD-layout folder (one patient, labels.csv of every slice)."""
    frame = pd.read_csv(ctmd_folder / "labels.csv")
    frame = frame[frame["patient_id"] == "P002"].sort_values("slice_index")
    (folder / "series" / "P002").mkdir(parents=True)
    for rel in frame["image"]:
        shutil.copy(ctmd_folder / rel, folder / rel)
    last = pydicom.dcmread(ctmd_folder / frame["image"].iloc[-1])
    z, n = float(last.ImagePositionPatient[2]), len(frame)
    rows = [frame]
    for i in range(N_BELOW):
        last.ImagePositionPatient = [*last.ImagePositionPatient[:2], z - 2.0 * (i + 1)]
        last.InstanceNumber, last.SOPInstanceUID = n + i + 1, pydicom.uid.generate_uid()
        rel = f"series/P002/ALTERED_{i:03d}.dcm"
        last.save_as(folder / rel)
        rows.append(pd.DataFrame([{**frame.iloc[-1].to_dict(), "image_id": f"P002_below_{i:03d}", "image": rel,
                                   "slice_index": n + i, "infection": 0}]))
    pd.concat(rows).to_csv(folder / "labels.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def chest_abdomen(tmp_path_factory) -> Path:
    return _altered_chest_abdomen(shared_dataset("covid_ct_md_sample"), tmp_path_factory.mktemp("ctmd") / "data")


def test_evaluate_analyses_the_chest_part_as_predict_does(chest_abdomen, tiny_run, tmp_path):
    from lesiondx.data import write_training_files

    run = tmp_path / "run"  # the tiny model, said to have been tuned on one of P002's slices
    shutil.copytree(tiny_run, run)
    write_training_files(run, [(next((chest_abdomen / "series" / "P002").glob("IM*.dcm")), "a test role")])
    tiny_run = run
    predicted = task.predict([chest_abdomen / "series" / "P002"], str(tiny_run), None)
    first, last = predicted["analysed_slices"]
    assert predicted["series_slices"] == 133 + N_BELOW and first < 20 and 100 < last < 140
    metrics = task.evaluate(str(tiny_run), chest_abdomen, tmp_path / "eval")
    # was: every one of the 253 slices scored, so the rule and the score could differ from predict's
    slices = pd.read_csv(tmp_path / "eval" / "predictions.csv")
    assert slices["slice_index"].tolist() == list(range(first, last + 1))
    assert slices["score"].tolist() == pytest.approx([s["probability"] for s in predicted["slices"]])
    patient = metrics["patients"][0]
    assert (patient["decision"], patient["score"]) == (predicted["patient"]["decision"],
                                                       pytest.approx(predicted["patient"]["score"]))
    assert (patient["n_slices"], patient["series_slices"]) == (last - first + 1, 133 + N_BELOW)
    partial = metrics["partially_analysed"]
    assert [(p["patient_id"], p["analysed_slice_index"], p["series_slices"]) for p in partial] == [
        ("P002", [first, last], 133 + N_BELOW)]
    assert "chest" in partial[0]["reason"]
    assert metrics["summary"][0].startswith("NOT AN INDEPENDENT TEST")  # P002's own slices: said first, as before
    assert any("partial analysis" in line and "P002" in line for line in metrics["summary"])
    assert any(line.startswith("input gate flagged 1 of 1 series") for line in metrics["summary"]), metrics["summary"]
    assert "chest–abdomen–pelvis" in patient["gate_notes"]
    assert "P002" in (tmp_path / "eval" / "report" / "report.html").read_text()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["partially_analysed"] == partial
