"""Shared fixtures for the real shared datasets (skipping with a clear reason when absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesiondx_testdata import SHARED_DATA, shared_dataset


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
