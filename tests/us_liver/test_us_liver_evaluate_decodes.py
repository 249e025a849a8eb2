"""``evaluate`` decodes each frame once: the row screen (gate + masks) and the scoring share one decode (real AUL
frames of the example folder, all seen in training; the scores are not the point here)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from lesiondx.io import raster
from lesiondx.us_liver import task
from lesiondx.us_liver.inference import DEFAULT_MODEL
from lesiondx_testdata import EXAMPLES

MINI = EXAMPLES / "aul_liver_us_mini"


def test_evaluate_decodes_each_frame_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    if not (MINI / "labels.csv").is_file() or not (DEFAULT_MODEL / "us_liver.pt").is_file():
        pytest.skip("example folder or shipped model missing")
    counts: Counter[str] = Counter()
    decode = raster._decode

    def counting(path: Path, modes: tuple[str, ...]):
        counts[Path(path).name] += 1
        return decode(path, modes)

    monkeypatch.setattr(raster, "_decode", counting)
    metrics = task.evaluate("default", MINI, tmp_path)
    frames = sorted(p.name for p in (MINI / "images").glob("*.jpg"))
    assert metrics["n_excluded"] == 0 and frames
    assert {name: counts[name] for name in frames} == dict.fromkeys(frames, 1)
