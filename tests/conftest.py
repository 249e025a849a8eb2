"""Shared fixtures: where the real shared datasets are, skipping with a reason when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LESIONDX_SHARED_DATA", REPO.parent / "shared" / "data"))
EXAMPLES = REPO / "examples"


def shared_dataset(name: str) -> Path:
    """Path of ``../shared/data/<name>``; skips the test when it is not there."""
    path = SHARED_DATA / name
    if not (path / "labels.csv").is_file():
        pytest.skip(f"shared dataset {name} not found at {path} (set LESIONDX_SHARED_DATA)")
    return path


@pytest.fixture
def aul_folder() -> Path:
    return shared_dataset("aul_liver_us")


@pytest.fixture
def ctmd_folder() -> Path:
    return shared_dataset("covid_ct_md_sample")


@pytest.fixture
def medseg_folder() -> Path:
    return shared_dataset("covid_medseg_semiseg")


@pytest.fixture
def ircadb_folder() -> Path:
    """The first IRCADb folder present (CC BY-NC-ND: read in place, never copied)."""
    found = sorted(p for p in SHARED_DATA.glob("liver_ircadb01_*") if (p / "labels.csv").is_file())
    if not found:
        pytest.skip(f"no liver_ircadb01_* dataset under {SHARED_DATA}")
    return found[0]
