"""Liver-relative sonographic signs (``lesiondx.us_liver.appearance``): synthetic frames (labelled synthetic:
speckled fields with drawn disks, rings and bands) plus one real AUL frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from lesiondx.us_liver import appearance as ap
from lesiondx.us_liver.rois import read_frame

AUL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "aul_liver_us"
H, W = 240, 320


def _field(level: float = 80.0, seed: int = 0) -> np.ndarray:
    """Synthetic speckled liver: gamma-distributed grey around ``level``."""
    return (level * np.random.default_rng(seed).gamma(20.0, 1 / 20.0, (H, W))).astype(np.float32)


def _disk(radius: float, cy: float = 100, cx: float = 160) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def _signs(grey: np.ndarray, lesion: np.ndarray) -> ap.Appearance:
    return ap.appearance(np.clip(grey, 0, 255), lesion, liver=np.ones((H, W), bool))


def test_synthetic_bright_disk_is_hyperechoic_and_dark_disk_hypoechoic():
    lesion = _disk(25)
    bright, dark = _field(), _field()
    bright[lesion] *= 1.6
    dark[lesion] *= 0.5
    assert _signs(bright, lesion).echo_ratio > 1.4
    assert _signs(dark, lesion).echo_ratio < 0.6
    assert abs(np.log(_signs(_field(), lesion).echo_ratio)) < 0.05  # same tissue: ratio ~1


def test_synthetic_ring_darkened_disk_has_a_halo():
    lesion = _disk(25)
    plain, halo = _field(), _field()
    plain[lesion] *= 1.3
    halo[lesion] *= 1.3
    yy, xx = np.mgrid[:H, :W]
    r = np.hypot(yy - 100, xx - 160)
    halo[(r > 22) & (r < 28)] *= 0.3  # hypoechoic rim straddling the outline
    with_halo, without = _signs(halo, lesion), _signs(plain, lesion)
    assert with_halo.halo_vs_lesion < -1.0 and with_halo.halo_vs_liver < -0.5
    assert with_halo.halo_vs_liver < without.halo_vs_liver - 0.5


def test_synthetic_bright_band_below_is_posterior_enhancement_and_dark_band_shadowing():
    lesion = _disk(20)
    below = np.zeros((H, W), bool)
    below[121:170, 140:181] = True
    enhanced, shadowed = _field(), _field()
    enhanced[below] *= 1.8
    shadowed[below] *= 0.3
    assert _signs(enhanced, lesion).posterior_ratio > 1.5
    assert _signs(shadowed, lesion).posterior_ratio < 0.5
    assert abs(np.log(_signs(_field(), lesion).posterior_ratio)) < 0.1


def test_synthetic_heterogeneous_lesion_and_sharp_margin():
    lesion = _disk(25)
    mottled = _field()
    mottled[lesion] = _field(seed=1)[lesion] * np.random.default_rng(2).choice([0.4, 1.6], lesion.sum())
    s = _signs(mottled, lesion)
    assert s.iqr_ratio > 1.5 and s.local_sd_ratio > 1.5
    sharp = np.full((H, W), 60.0, np.float32) + np.random.default_rng(3).normal(0, 4, (H, W))
    sharp[lesion] += 80
    blurred = ndimage.gaussian_filter(sharp, 4)
    assert _signs(sharp, lesion).margin_sharpness > 2 * _signs(blurred, lesion).margin_sharpness


def test_synthetic_shape_signs_and_size_freedom():
    disk = _disk(30)
    c_shape = disk & ~((np.mgrid[:H, :W][1] > 160) & (np.abs(np.mgrid[:H, :W][0] - 100) < 12))
    circ_disk, solid_disk = ap.shape_signs(disk)
    circ_c, solid_c = ap.shape_signs(c_shape)
    assert solid_disk > 0.97 and solid_c < 0.9 and circ_c < circ_disk
    small, large = _disk(15), _disk(40)
    grey_small, grey_large = _field(), _field()
    grey_small[small] *= 1.5  # the same tissue and contrast, lesions of two sizes
    grey_large[large] *= 1.5
    a, b = _signs(grey_small, small), _signs(grey_large, large)
    assert abs(np.log(a.echo_ratio / b.echo_ratio)) < 0.1
    assert abs(a.circularity - b.circularity) < 0.1 and abs(a.solidity - b.solidity) < 0.05


def test_tiny_lesion_gives_finite_neutral_fallbacks_and_bad_masks_raise():
    lesion = np.zeros((H, W), bool)
    lesion[100:102, 160:162] = True
    values = _signs(_field(), lesion).inputs()
    assert list(values) == list(ap.INPUTS) and all(np.isfinite(v) for v in values.values())
    with pytest.raises(ValueError, match="empty"):
        ap.appearance(_field(), np.zeros((H, W), bool))
    with pytest.raises(ValueError, match="shape|is"):
        ap.appearance(_field(), np.ones((H, W + 1), bool))


def test_table_names_the_file_without_a_lesion(tmp_path):
    image = tmp_path / "frame.png"
    Image.fromarray(_field().astype(np.uint8)).save(image)
    rows = pd.DataFrame({"image_id": ["x"], "image": [str(image)], "lesion_mask": [str(tmp_path / "none.png")],
                         "liver_mask": [None], "sector_mask": [None]})
    with pytest.raises(ValueError, match="frame.png"):
        ap.appearance_table(rows)


@pytest.mark.skipif(not (AUL / "labels.csv").is_file(), reason="AUL data folder not present")
def test_real_aul_frame_signs_are_finite_and_gain_free():
    row = pd.read_csv(AUL / "labels.csv").query("label == 'malignant'").iloc[0]
    frame = read_frame(AUL / row["image"], AUL / row["lesion_mask"], AUL / row["liver_mask"], AUL / row["sector_mask"])
    base = ap.frame_appearance(frame)
    assert all(np.isfinite(v) for v in base.inputs().values())
    assert 0.3 < base.circularity <= 1.2 and 0.5 < base.solidity <= 1.0
    darker = ap.appearance(frame.grey * 0.7, frame.lesion, frame.liver, frame.sector)  # scanner gain 0.7
    for name in ("echo_ratio", "iqr_ratio", "local_sd_ratio", "posterior_ratio"):
        assert abs(np.log(getattr(darker, name) / getattr(base, name))) < 0.05, name
    for name in ("halo_vs_lesion", "halo_vs_liver", "margin_sharpness"):  # in liver SDs: gain cancels
        assert getattr(darker, name) == pytest.approx(getattr(base, name), rel=0.02, abs=0.02), name
    assert (darker.circularity, darker.solidity) == (base.circularity, base.solidity)


def test_synthetic_signs_feed_the_loso_heads_and_univariate_table():
    import torch

    from lesiondx.us_liver import domains
    from lesiondx.us_liver.config import load_us_config
    from lesiondx.us_liver.loso_sweep import appearance_cache, paired_entry, univariate
    from lesiondx.us_liver.probe import ProbeCache

    rng = np.random.default_rng(0)
    n = 150
    y = (np.arange(n) % 2).astype(int)
    table = pd.DataFrame({"image_id": [f"f{i}" for i in range(n)], "patient_id": [f"p{i}" for i in range(n)],
                          "label": np.where(y == 1, "malignant", "benign"), "y": y,
                          "lesion_area": rng.uniform(100, 5000, n)})
    signs = pd.DataFrame(rng.normal(size=(n, len(ap.INPUTS))), columns=list(ap.INPUTS)).assign(image_id=table["image_id"])
    signs["log_echo_ratio"] -= 1.5 * y  # synthetic: malignant lesions darker than their liver
    cache = appearance_cache(ProbeCache(table, torch.zeros(n, 3, 4)), signs.sample(frac=1, random_state=1))
    assert cache.features.shape == (n, 1, len(ap.INPUTS))
    fold_name = np.array(["a", "b", "c"])[np.arange(n) // 50]
    scores, chosen = domains.leave_one_scanner_out(cache, fold_name, load_us_config(None))
    assert set(chosen) == {"a", "b", "c"} and np.isfinite(scores).all()
    uni = univariate(cache.table, ap.INPUTS, fold_name)
    assert uni["log_echo_ratio"]["all"]["auc"] < 0.2 and 0.3 < uni["solidity"]["all"]["auc"] < 0.7
    assert paired_entry(y, scores, rng.uniform(size=n))["diff"] > 0.2
    bad = signs.assign(log_echo_ratio=np.where(np.arange(n) == 3, np.nan, signs["log_echo_ratio"]))
    with pytest.raises(ValueError, match="not finite"):
        appearance_cache(ProbeCache(table, torch.zeros(n, 3, 4)), bad)
