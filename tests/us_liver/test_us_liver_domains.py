"""Scanner groups come from image geometry (never file names), and leave-one-scanner-out never puts a group
or a patient on both sides (synthetic frames: drawn fans, labelled synthetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import pandas as pd
import torch
from PIL import Image

from lesiondx.us_liver import domains
from lesiondx.us_liver.config import UsLiverConfig
from lesiondx.us_liver.probe import ProbeCache, ProbeFold


def _fan(path: Path, width: int, height: int, cx_frac: float) -> str:
    """A synthetic B-mode-like frame: dark background, bright fan centred at ``cx_frac`` of the width."""
    yy, xx = np.mgrid[:height, :width]
    apex = cx_frac * width
    fan = (yy > 20) & (np.abs(xx - apex) < 0.3 * width * (yy / height)) & (yy < 0.9 * height)
    grey = np.where(fan, 120, 0).astype(np.uint8)
    Image.fromarray(grey).convert("RGB").save(path)
    return str(path)


def test_groups_come_from_geometry_not_names(tmp_path: Path):
    # names lie on purpose: the "1024" files are 720x576, the "left" file is centred, and vice versa
    rows = pd.DataFrame({
        "image": [_fan(tmp_path / "scanner1024_left.png", 720, 576, 0.5),
                  _fan(tmp_path / "scanner720_centre.png", 1024, 768, 0.5),
                  _fan(tmp_path / "x_right.png", 720, 576, 0.42),
                  _fan(tmp_path / "y.png", 720, 576, 0.6)],
        "patient_id": ["p1", "p2", "p3", "p4"]})
    groups = domains.scanner_groups(rows)
    assert list(groups) == ["720x576-centre", "1024x768-centre", "720x576-left", "720x576-right"]
    # a sector outline, when given, decides the layout instead of the bright area
    outline = np.zeros((576, 720), np.uint8)
    outline[50:500, 380:700] = 255  # centre x = 540 / 720 = 0.75: right
    Image.fromarray(outline).save(tmp_path / "outline.png")
    assert domains.scanner_group(domains.frame_geometry(rows["image"][0], tmp_path / "outline.png")) == "720x576-right"
    # a patient whose frames differ in geometry keeps one group (the group of most of its frames)
    two = pd.DataFrame({"image": [rows["image"][0], rows["image"][0], rows["image"][1]], "patient_id": ["p", "p", "p"]})
    assert set(domains.scanner_groups(two)) == {"720x576-centre"}


def test_small_groups_are_left_out_together():
    groups = pd.Series(["a"] * 40 + ["b"] * 31 + ["c"] * 5 + ["d"] * 29 + ["d"])
    labels = pd.Series(["benign", "malignant"] * 20 + ["malignant"] * 31 + ["benign"] * 5 + ["malignant"] * 29 + ["normal"])
    folds = domains.loso_folds(groups, labels, min_frames=30)
    assert set(folds[groups == "a"]) == {"a"} and set(folds[groups == "b"]) == {"b"}
    assert set(folds[groups.isin(["c", "d"])]) == {domains.OTHER}  # d: 29 lesion frames + 1 normal frame
    table = domains.group_table(groups, labels)
    assert table.loc["d"].tolist() == [0, 29, 1, 29] and table.index[0] == "a"


def test_loso_never_trains_on_the_left_out_group(monkeypatch):
    rng = np.random.default_rng(0)
    n = 60
    fold_name = np.array(["g1"] * 20 + ["g2"] * 20 + ["other"] * 20)
    table = pd.DataFrame({"patient_id": [f"p{i // 2}" for i in range(n)], "label": ["benign", "malignant"] * (n // 2)})
    table["y"] = table["label"].eq("malignant").astype(int)
    cache = ProbeCache(table, torch.from_numpy(rng.normal(size=(n, 4, 8)).astype(np.float32)))
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def fake_fit(x, y, train_idx, val_idx, cfg):
        seen.append((train_idx, val_idx))
        return ProbeFold(np.zeros(8), np.ones(8), np.ones(8), 0.0, 0.01, 0.5, val_idx, np.zeros(len(val_idx)))

    monkeypatch.setattr(domains, "fit_probe", fake_fit)
    scores, chosen = domains.leave_one_scanner_out(cache, fold_name, UsLiverConfig(folds=3))
    assert sorted(chosen) == ["g1", "g2", "other"] and not np.isnan(scores).any()
    for (train_idx, val_idx), name in zip(seen, sorted(chosen)):
        used = np.concatenate([train_idx, val_idx])
        assert not np.isin(fold_name[used], [name]).any()  # the left-out group is on one side only
        assert set(used) | set(np.flatnonzero(fold_name == name)) == set(range(n))  # every other row trains
        assert not set(table["patient_id"].iloc[train_idx]) & set(table["patient_id"].iloc[val_idx])


AUL = Path(__file__).resolve().parents[3] / "shared" / "data" / "aul_liver_us"
MINI = Path(__file__).resolve().parents[2] / "examples" / "aul_liver_us_mini"


def test_lesion_size_in_mm_only_with_a_spacing():
    from lesiondx.data import Box
    from lesiondx.us_liver.inputs import lesion_size_mm, read_us_inputs

    box = Box(10, 20, 110, 70)
    assert lesion_size_mm(box.width, box.height, (0.2, 0.25)) == {"width_mm": 25.0, "height_mm": 10.0}
    assert lesion_size_mm(box.width, box.height, None) is None
    assert read_us_inputs([MINI / "images" / "benign_001.jpg"], None)[0].spacing_mm is None  # JPEGs carry none


def test_normal_frame_is_no_focal_lesion_not_benign(tmp_path: Path):
    """A real AUL normal frame of fold 0 (never seen by the segmenter) and a real lesion frame."""
    from lesiondx.us_liver import task
    from lesiondx.us_liver.inference import DEFAULT_MODEL

    normal, lesion = AUL / "images" / "normal_007.jpg", MINI / "images" / "malignant_010.jpg"
    if not (DEFAULT_MODEL / "us_liver.pt").is_file() or not normal.is_file() or not lesion.is_file():
        pytest.skip("shipped us-liver model or the AUL frames missing")
    none, found = task.predict([normal, lesion], "default", tmp_path, cam=False)["results"]
    assert none["label"] == "no focal lesion found" and none["probability"] is None and none["box"] is None
    assert none["p_lesion"] < none["no_lesion_threshold"] == pytest.approx(0.9449) and Path(none["overlay"]).is_file()
    assert found["label"] in ("benign", "malignant") and 0 <= found["probability"] <= 1
    assert found["p_lesion"] >= found["no_lesion_threshold"] and found["lesion_size_mm"] is None
    # the service shows it as its own result: no probability, the lesion probability beside it
    from lesiondx.service.results import normalize

    entries, _ = normalize({"results": [none, found]}, tmp_path / "res", task="us-liver")
    assert entries[0]["label"] == "no focal lesion found" and entries[0]["probability"] is None
    assert entries[0]["p_lesion"] == pytest.approx(none["p_lesion"]) and entries[1]["probability"] is not None
