"""The shipped default model (models/us-liver): size limit, metadata, and one prediction."""

from __future__ import annotations

from pathlib import Path

import pytest

from lesiondx.models import MAX_SHIPPED_MB, load_checkpoint, size_mb
from lesiondx.us_liver import task
from lesiondx.us_liver.inference import DEFAULT_MODEL, resolve_model

REPO = Path(__file__).resolve().parents[2]
MINI = REPO / "examples" / "aul_liver_us_mini"


@pytest.fixture(scope="module")
def shipped() -> Path:
    path = DEFAULT_MODEL / "us_liver.pt"
    if not path.is_file():
        pytest.skip(f"shipped model {path} not present")
    return path


def test_shipped_checkpoint_is_small_and_documented(shipped: Path):
    assert resolve_model("default") == shipped
    assert size_mb(shipped) <= MAX_SHIPPED_MB
    states, meta = load_checkpoint(shipped)
    assert {"segmenter", "member0"} <= set(states) and meta["n_members"] == meta["config"]["folds"]
    assert 0 < meta["threshold"] < 1 and meta["date"] == "2026-11-24" and len(meta["data_hash"]) == 64
    assert (DEFAULT_MODEL / "MODEL_CARD.md").is_file() and (DEFAULT_MODEL / "config.yaml").is_file()


def test_default_model_predicts_a_real_frame(shipped: Path, tmp_path: Path):
    image = MINI / "images" / "malignant_010.jpg"
    if not image.is_file():
        pytest.skip(f"{image} missing")
    r = task.predict([image], "default", tmp_path)["results"][0]
    assert 0 <= r["probability"] <= 1 and Path(r["overlay"]).is_file()
    x1, y1, x2, y2 = r["box"]
    assert x2 > x1 and y2 > y1
    assert r["model_version"].startswith("us-liver-dcnn-us-2026-11-24-")


def test_shipped_cam_explains_the_predicted_class_inside_the_crop(shipped: Path):
    import numpy as np

    from lesiondx.us_liver.inference import crop_region, fixed_side, frame_for, load_bundle, score_frame, sector_box

    bundle = load_bundle("default")
    for name in ("benign_001.jpg", "malignant_010.jpg"):
        image = MINI / "images" / name
        if not image.is_file():
            pytest.skip(f"{image} missing")
        frame, _, peak = frame_for(bundle, image, None)
        assert 0 <= peak <= 1
        scored = score_frame(bundle, frame, cam=True)
        heat = scored.heatmap
        assert heat.shape == frame.grey.shape and heat.max() > 0.5, name  # never an empty map
        cx, cy, side = crop_region(scored.box, fixed_side(sector_box(frame), bundle.config.crop_side_frac),
                                   bundle.config.crop_margin)
        ys, xs = np.nonzero(heat > 0)
        assert xs.min() >= cx - side / 2 - 2 and xs.max() <= cx + side / 2 + 2
        assert ys.min() >= cy - side / 2 - 2 and ys.max() <= cy + side / 2 + 2
