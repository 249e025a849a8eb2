"""Shared fixtures for the lesiondx.stats tests (pROC reference tables live in fixtures/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).parent / "fixtures"


def _floats(x):
    """pROC JSON stores +-Infinity as strings and length-1 vectors as scalars."""
    return np.atleast_1d(np.array([float(v) for v in np.atleast_1d(x)], dtype=float))


@pytest.fixture(scope="session")
def proc_ref() -> dict:
    return json.loads((FIXTURES / "proc_reference.json").read_text())


@pytest.fixture(scope="session")
def proc_tables(proc_ref) -> dict[str, pd.DataFrame]:
    return {k: pd.read_csv(FIXTURES / v["file"]) for k, v in proc_ref.items() if isinstance(v, dict)}


@pytest.fixture(scope="session")
def floats():
    return _floats


@pytest.fixture(scope="session")
def predictions() -> pd.DataFrame:
    """Synthetic image-level predictions: 40 patients, 1-4 images each, text labels (do not mutate)."""
    rng = np.random.default_rng(7)
    rows = []
    for p in range(40):
        lab = "malignant" if p % 5 in (0, 1) else "benign"
        centre = "AB"[p % 2]
        for i in range(1 + p % 4):
            z = rng.normal(1.0 if lab == "malignant" else -0.5, 1.0)
            rows.append(
                dict(
                    image_id=f"p{p}_{i}",
                    patient_id=f"p{p}",
                    label=lab,
                    score=float(1 / (1 + np.exp(-z))),
                    centre=centre,
                    size_mm=5.0 + 2 * (p % 9),
                )
            )
    return pd.DataFrame(rows)


@pytest.fixture
def reader_df() -> pd.DataFrame:
    """3 readers x 30 cases x 2 modes; AI makes reads more accurate and faster."""
    rng = np.random.default_rng(0)
    truth = rng.choice(["benign", "malignant"], 30)
    rows = []
    for reader in ("r1", "r2", "r3"):
        for ai, p_ok, secs in ((0, 0.7, 60.0), (1, 0.9, 45.0)):
            ok = rng.random(30) < p_ok
            for i in range(30):
                other = "benign" if truth[i] == "malignant" else "malignant"
                rows.append(
                    dict(
                        reader=reader,
                        case_id=f"c{i}",
                        truth=truth[i],
                        answer=truth[i] if ok[i] else other,
                        confidence=int(rng.integers(1, 6)),
                        seconds=secs + rng.normal(0, 8),
                        with_ai=ai,
                    )
                )
    return pd.DataFrame(rows)
