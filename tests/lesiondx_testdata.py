"""Where the real shared datasets and bundled examples are; skip with a reason when absent."""

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

