"""Fixtures of the ct-covid tests: a tiny untrained checkpoint and the 10-slice DICOM example."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from lesiondx.config import config_to_dict
from lesiondx.ct_covid.config import read_config
from lesiondx.ct_covid.model import CHECKPOINT, CONFIG, build_model, checkpoint_meta
from lesiondx.models import save_checkpoint

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "covid_ct_md_mini"


@pytest.fixture(scope="session")
def mini_folder() -> Path:
    if not (EXAMPLE / "labels.csv").is_file():
        pytest.skip(f"example folder {EXAMPLE} missing")
    return EXAMPLE


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory with a random-init UNet++ at 64² (structure tests, not accuracy)."""
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("tiny_run")
    cfg = read_config(input_size=64, min_area=4, infer_batch=4)
    (run / CONFIG).write_text(yaml.safe_dump(config_to_dict(cfg)))
    save_checkpoint(run / CHECKPOINT, {"model": build_model(cfg, pretrained=False)},
                    checkpoint_meta(cfg, model_version="tiny-untrained"))
    return run


@pytest.fixture
def medseg_excerpt(medseg_folder, tmp_path):
    """``make(split, n)``: a copy (in the test's tmp folder) of the first ``n`` MedSeg rows of ``split`` with their
    slices and masks; returns ``(folder, rows)``."""
    import shutil

    import pandas as pd

    def make(split: str, n: int) -> tuple[Path, pd.DataFrame]:
        frame = pd.read_csv(medseg_folder / "labels.csv", dtype=str, keep_default_na=False)
        frame = frame[frame["split"] == split].head(n)
        data = tmp_path / "medseg"
        for rel in [*frame["image"], *frame["infection_mask"]]:
            (data / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(medseg_folder / rel, data / rel)
        frame.to_csv(data / "labels.csv", index=False)
        return data, frame

    return make
