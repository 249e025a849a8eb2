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



def corrupted_copy(src: Path, dst: Path, image_id: str, *, drop: bool = False, column: str = "image") -> tuple[Path, str]:
    """A copy of dataset folder ``src`` at ``dst`` in which the ``column`` file of row ``image_id`` is 100 bytes
    of noise, or (``drop``) whose labels.csv lacks that row; returns the folder and the file's relative path."""
    import shutil

    import numpy as np
    import pandas as pd

    shutil.copytree(src, dst)
    frame = pd.read_csv(dst / "labels.csv", dtype=str, keep_default_na=False)
    rel = str(frame.loc[frame["image_id"] == image_id, column].iloc[0])
    if drop:
        frame[frame["image_id"] != image_id].to_csv(dst / "labels.csv", index=False)
    else:
        (dst / rel).write_bytes(np.random.default_rng(0).integers(0, 256, 100, dtype=np.uint8).tobytes())
    return dst, rel
