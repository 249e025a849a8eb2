"""Which patient labels mean pneumonia is configuration (``positive_labels``); every other label is negative."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lesiondx.ct_covid import task
from lesiondx.ct_covid.config import read_config
from lesiondx.ct_covid.evaluation import patient_truth


def test_default_positives_are_covid_and_cap_only():
    cfg = read_config()
    assert [patient_truth(x, cfg) for x in ("COVID-19", " cap ", "Normal", "Lung cancer", "A0001", "")] == [1, 1, 0, 0, 0, 0]


def test_positive_labels_from_yaml(tmp_path: Path):
    (tmp_path / "c.yaml").write_text("positive_labels: [COVID-19]\n")
    cfg = read_config(tmp_path / "c.yaml")
    assert cfg.positive_labels == ("COVID-19",) and patient_truth("CAP", cfg) == 0
    for bad in ("COVID-19", (), ("",)):
        with pytest.raises(ValueError, match="positive_labels"):
            read_config(positive_labels=bad)


def test_evaluate_counts_an_unlisted_label_as_negative(tiny_run, mini_folder, tmp_path):
    """A lung-cancer patient is a negative (it used to be called pneumonia: 'everything but Normal')."""
    frame = pd.read_csv(mini_folder / "labels.csv")
    shutil.copytree(mini_folder / "series", tmp_path / "data" / "series")
    frame["patient_id"] = np.where(frame["slice_index"] < 5, "A", "B")
    frame["label"] = np.where(frame["patient_id"] == "A", "Lung cancer", "CAP")
    frame.loc[frame["patient_id"] == "B", "slice_index"] -= 5
    frame.to_csv(tmp_path / "data" / "labels.csv", index=False)
    task.evaluate(str(tiny_run), tmp_path / "data", tmp_path / "eval")
    patients = pd.read_csv(tmp_path / "eval" / "patients.csv")
    assert dict(zip(patients["patient_id"], patients["truth"])) == {"A": 0, "B": 1}
