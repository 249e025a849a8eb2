"""Fixtures for ct-liver tests: small SYNTHETIC phantoms and real IRCADb slices read in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesiondx.ct_liver.synthetic import make_multiphase_folder


@pytest.fixture(scope="session")
def synthetic_multiphase(tmp_path_factory) -> tuple[Path, Path]:
    """SYNTHETIC train and test multiphase folders (different seeds and patients)."""
    root = tmp_path_factory.mktemp("synthetic")
    train = make_multiphase_folder(root / "train", patients_per_kind=3, slices=2, size=96, seed=1)
    test = make_multiphase_folder(root / "test", patients_per_kind=2, slices=2, size=96, seed=2)
    return train, test
