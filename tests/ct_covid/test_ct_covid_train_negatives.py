"""Training with negatives: CT-MD-layout slices without infection train as all-zero masks, fine-tuning from a
model folder; left-out patients are never trained on."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from lesiondx.ct_covid import task
from lesiondx.ct_covid.config import read_config
from lesiondx.ct_covid.model import CHECKPOINT
from lesiondx.ct_covid.train import negative_slices, resolve_folders
from lesiondx.models import load_checkpoint


def test_negative_slices_are_the_infection_free_slices_of_pneumonia_patients_and_every_slice_of_others(mini_folder, tmp_path):
    cfg = read_config(input_size=64)
    labels = pd.read_csv(mini_folder / "labels.csv")
    negatives = negative_slices([mini_folder], cfg)
    assert len(negatives.ids) == int((labels["infection"] == 0).sum()) > 0
    assert negatives.images.shape[1:] == (64, 64) and not negatives.masks.any()
    assert negative_slices([mini_folder], read_config(input_size=64, exclude_patients=["P002"])).ids == ()
    assert len(negative_slices([mini_folder], read_config(input_size=64, positive_labels=["CAP"])).ids) == len(labels)


def test_negative_folders_resolve_next_to_the_training_data_and_a_missing_one_is_named(tmp_path):
    (tmp_path / "neg").mkdir()
    (tmp_path / "neg" / "labels.csv").write_text("image_id\n")
    assert resolve_folders(("neg",), tmp_path / "medseg") == [tmp_path / "neg"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        resolve_folders(("nowhere",), tmp_path / "medseg")


def test_fine_tune_with_negatives_from_a_model_folder(medseg_folder, mini_folder, tiny_run, tmp_path):
    config = tmp_path / "ft.yaml"
    config.write_text("input_size: 64\nepochs: 1\nbatch_size: 4\nmax_train_images: 4\nval_fraction: 0.25\nmin_area: 4\n"
                      f"negative_data: [{mini_folder}]\nnegative_share: 0.5\ninit_from: {tiny_run}\n")
    run = task.train(medseg_folder, tmp_path / "run", config)
    states, meta = load_checkpoint(run / CHECKPOINT)
    assert meta["n_negative_slices"] == int((pd.read_csv(mini_folder / "labels.csv")["infection"] == 0).sum())
    listed = pd.read_csv(run / "training_files.csv")  # what evaluate checks for overlap: the slices it trained on
    assert (listed["role"] == f"segmenter negatives ({mini_folder.name})").sum() == meta["n_negative_slices"]
    assert (listed["role"] == "segmenter training").sum() == meta["n_train"] + meta["n_val"]
    start, _ = load_checkpoint(Path(tiny_run) / CHECKPOINT)
    changed = [k for k, v in states["model"].items() if v.is_floating_point() and not torch.allclose(v, start["model"][k])]
    assert changed, "fine-tuning changed no weight"
    assert np.isfinite(pd.read_csv(run / "history.csv")["loss"]).all()


def test_train_lists_the_slices_the_segmenter_reports_without_reading_split_csv_back(medseg_folder, tmp_path, monkeypatch):
    """The training list comes from what train_segmenter returns (split.csv was read back from disk: a second
    source of truth, and a failure when it was not written)."""
    from lesiondx.ct_covid import train as train_module

    used: list[str] = []

    def stub(manifest, run_dir, config, negatives):  # stands in for the (slow) UNet++ training
        used.extend(manifest.frame["image_id"].astype(str)[:3])
        return SimpleNamespace(checkpoint=run_dir / CHECKPOINT, image_ids=tuple(used))  # as SegmenterRun

    monkeypatch.setattr(train_module, "train_segmenter", stub)
    monkeypatch.setattr(task, "export_model", lambda out: None)
    run = task.train(medseg_folder, tmp_path / "run")
    assert not (run / "split.csv").exists()
    listed = pd.read_csv(run / "training_files.csv", dtype=str)
    assert len(used) == 3 and len(listed) == 3 and (listed["role"] == "segmenter training").all()
