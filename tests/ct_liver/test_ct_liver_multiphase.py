"""SYNTHETIC multiphase phantoms end to end: train → evaluate per phase and combined → predict with two phases."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lesiondx.ct_liver import task
from lesiondx.ct_liver.multiphase import patient_probabilities


def test_patient_probabilities_softmax_of_mean_log_probabilities():
    table = pd.DataFrame({"patient_id": ["a", "a", "b"], "x": [0.9, 0.5, 0.2], "y": [0.1, 0.5, 0.8]})
    agg = patient_probabilities(table, ["x", "y"]).set_index("patient_id")
    gx, gy = np.sqrt(0.9 * 0.5), np.sqrt(0.1 * 0.5)
    assert agg.loc["a", "x"] == pytest.approx(gx / (gx + gy))
    assert agg.loc["b", "predicted"] == "y"
    np.testing.assert_allclose(agg[["x", "y"]].sum(axis=1), 1.0)


def test_synthetic_multiphase_end_to_end(synthetic_multiphase, tmp_path):
    train, test = synthetic_multiphase
    run = task.train(train, tmp_path / "run", None, epochs=8, batch_size=16, lr=2e-3, crop_px=64, classify_px=96)
    metrics = task.evaluate(str(run), test, tmp_path / "eval")
    cls = metrics["classification"]
    assert cls["level"] == "leaf" and set(cls["per_phase"]) == {"arterial", "portal-venous"}
    assert cls["combined"]["n"] == 12  # 6 kinds × 2 SYNTHETIC test patients
    assert cls["combined"]["accuracy"] >= 0.4  # chance is 1/6; the phantoms are easy by construction
    # predict: one SYNTHETIC patient, two phase folders
    frame = pd.read_csv(test / "labels.csv")
    patient = frame["patient_id"].iloc[0]
    folders = []
    for phase in ("arterial", "portal-venous"):
        folder = tmp_path / f"{patient}_{phase}"
        folder.mkdir()
        for rel in frame[(frame["patient_id"] == patient) & (frame["phase"] == phase)]["image"]:
            shutil.copy(test / rel, folder / Path(rel).name)
        folders.append(folder)
    result = task.predict(folders, str(run), tmp_path / "pred", phases=["arterial", "portal-venous"], classifier="lilnet")
    assert {s["phase"] for s in result["studies"]} == {"arterial", "portal-venous"}
    probs = result["patient"]["probabilities"]
    if result["patient"]["n_inside_liver"]:
        assert probs["malignant"] + probs["benign"] == pytest.approx(1.0, abs=1e-6)
        assert set(probs) == {"malignant", "benign", "HCC", "ICC", "MET", "FNH", "HEM", "cyst"}
    assert result["model_version"].startswith("ct-liver:")
