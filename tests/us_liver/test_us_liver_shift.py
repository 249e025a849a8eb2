"""Scanner-shift augmentation, the size-free S view, liver z-score, the MobileNetV2 trunk and the LOSO sweep's
helpers (synthetic arrays and random-init weights, labelled synthetic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lesiondx.data import Box
from lesiondx.us_liver import shift
from lesiondx.us_liver.config import load_us_config
from lesiondx.us_liver.loso_sweep import nested_choice, view_subset
from lesiondx.us_liver.probe import ProbeCache
from lesiondx.us_liver.rois import UsFrame, lesion_crop
from lesiondx.us_liver.views import MAGNIFIED_SIDE, view_crops


def _noise(h: int = 240, w: int = 320, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (h, w)).astype(np.float32)


def _high_freq_energy(a: np.ndarray) -> float:
    return float(np.mean(np.diff(a, axis=1) ** 2) + np.mean(np.diff(a, axis=0) ** 2))


def test_resolution_keeps_size_and_removes_fine_detail():
    grey = _noise()
    low = shift.degrade_resolution(grey, 80)
    assert low.shape == grey.shape
    assert _high_freq_energy(low) < 0.1 * _high_freq_energy(grey)  # speckle-scale detail is gone
    assert abs(low.mean() - grey.mean()) < 3  # brightness kept
    np.testing.assert_array_equal(shift.degrade_resolution(grey, 320), grey)  # own width: unchanged


def test_jpeg_quality_orders_the_error():
    grey = shift.degrade_resolution(_noise(), 160)
    err = {q: np.abs(shift.jpeg_roundtrip(grey, q) - grey).mean() for q in (20, 90)}
    assert shift.jpeg_roundtrip(grey, 20).shape == grey.shape
    assert err[20] > 1.5 * err[90] > 0


def test_gain_tgc_gamma_and_tint():
    flat = np.full((100, 50), 100.0, np.float32)
    tgc = shift.gain_tgc_gamma(flat, 1.0, 0.5, 1.0)
    assert tgc[-1].mean() > tgc[0].mean() * 1.5  # deeper rows (bottom) amplified
    assert shift.gain_tgc_gamma(flat, 1.0, 0.0, 0.5).mean() > 150  # gamma < 1 lifts mid-grey
    ramp = np.tile(np.linspace(0, 255, 64, dtype=np.float32), (4, 1))
    np.testing.assert_allclose(shift.tinted_grey(ramp, (1.0, 1.0, 1.0)), ramp, atol=0.01)
    assert np.all(np.diff(shift.tinted_grey(ramp, (0.7, 1.3, 1.1))[0]) >= 0)  # a tone curve: monotone


def test_scanner_shift_is_seeded_and_keeps_shape():
    grey = _noise()
    a = shift.scanner_shift(grey, np.random.default_rng(1))
    assert a.shape == grey.shape and a.min() >= 0 and a.max() <= 255
    np.testing.assert_array_equal(a, shift.scanner_shift(grey, np.random.default_rng(1)))
    assert not np.array_equal(a, shift.scanner_shift(grey, np.random.default_rng(2)))


def test_liver_z_removes_gain_and_offset():
    grey = shift.degrade_resolution(_noise(), 100) * 0.5 + 40
    region = np.zeros(grey.shape, bool)
    region[50:200, 60:260] = True
    z = shift.liver_z(grey, region)
    assert z[region].mean() == pytest.approx(128, abs=0.5)
    assert z[region].std() == pytest.approx(shift.Z_SCALE, rel=0.05)
    np.testing.assert_allclose(shift.liver_z(grey * 1.4 + 15, region), z, atol=1e-3)  # gain does not survive


def _textured_lesions() -> tuple[tuple[np.ndarray, Box], tuple[np.ndarray, Box]]:
    """A fine-textured disc (radius 120 px) and the same scene 3× smaller (anti-aliased, as a smaller lesion
    shows on screen): (frame, lesion box) at scale 1 and at scale 3."""
    yy, xx = np.mgrid[:600, :600]
    large = np.where((yy - 300) ** 2 + (xx - 300) ** 2 < 120**2, _noise(600, 600, seed=3), 30).astype(np.float32)
    return (shift.resample(large, 200, 200), Box(60, 60, 140, 140)), (large, Box(180, 180, 420, 420))


def test_size_free_view_is_the_same_at_two_scales_and_magnified_view_is_not():
    (small, box_s), (large, box_l) = _textured_lesions()
    s_small, s_large = (shift.size_free_crop(g, b, 0.15, 96, native=64) for g, b in ((small, box_s), (large, box_l)))
    assert s_small.shape == s_large.shape == (96, 96)
    sf_gap = np.abs(s_small - s_large).mean()
    m_small, m_large = (lesion_crop(g, b, MAGNIFIED_SIDE, 96, 0.15) for g, b in ((small, box_s), (large, box_l)))
    m_gap = np.abs(m_small - m_large).mean()
    assert sf_gap < 2.0  # grey levels (0..255): the same crop (measured 0.6)
    assert m_gap > 5 * sf_gap  # the magnified view differs with absolute size: aliasing vs blur (17 vs 0.6)


def _frame() -> UsFrame:
    grey = shift.degrade_resolution(_noise(300, 400, seed=5), 200)
    lesion = np.zeros(grey.shape, bool)
    lesion[120:170, 180:240] = True
    liver = np.zeros(grey.shape, bool)
    liver[40:280, 60:360] = True
    return UsFrame(grey, lesion, liver, None)


def test_view_crops_scanner_policy_and_sizes():
    cfg = load_us_config(None, crop_size=64, views="LBMS", augment_policy="scanner")
    crops = view_crops(_frame(), cfg, np.random.default_rng(0), 2)
    assert set(crops) == set("LBMS") and all(c.shape == (3, 64, 64) for c in crops.values())
    clean = view_crops(_frame(), load_us_config(None, crop_size=64, views="LBMS"), np.random.default_rng(9), 0)
    for v in "LBMS":  # copy 0 is the clean crop whatever the policy
        np.testing.assert_allclose(crops[v][0], clean[v][0])
        assert not np.allclose(crops[v][1], crops[v][0])
    z = view_crops(_frame(), load_us_config(None, crop_size=64, views="BS", intensity_norm="liver_z"), np.random.default_rng(0), 0)
    assert not np.allclose(z["S"][0], clean["S"][0])


def test_config_checks_new_options():
    assert load_us_config(None, views="BS", backbone="mobilenet_v2").views == "BS"
    with pytest.raises(ValueError, match="views"):
        load_us_config(None, views="LX")
    with pytest.raises(ValueError, match="intensity_norm"):
        load_us_config(None, intensity_norm="zscore")
    with pytest.raises(ValueError, match="probe head only"):
        load_us_config(None, head="dcnn", augment_policy="scanner")
    with pytest.raises(ValueError, match="lesion view"):
        load_us_config(None, views="B")
    from lesiondx.us_liver.views import cam_view

    assert [cam_view(v) for v in ("LBM", "BM", "BS", "SM")] == ["L", "M", "S", "M"]


def test_mobilenet_trunk_needs_weights_and_gives_level_widths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from torchvision.models import mobilenet_v2

    from lesiondx.us_liver.mobilenet import PooledMobileNetV2

    monkeypatch.setenv("LESIONDX_MOBILENET_V2_WEIGHTS", str(tmp_path / "missing.pth"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    with pytest.raises(FileNotFoundError, match="LESIONDX_MOBILENET_V2_WEIGHTS"):
        PooledMobileNetV2(("b5", "head"))
    torch.manual_seed(0)
    torch.save(mobilenet_v2(weights=None).state_dict(), tmp_path / "w.pth")  # random init: shapes only
    trunk = PooledMobileNetV2(("b4", "b5", "b6", "head"), weights=tmp_path / "w.pth")
    out, maps = trunk(torch.rand(2, 64, 64) * 255, maps=True)
    assert out.shape == (2, 96 + 160 + 320 + 1280) and trunk.features == out.shape[1]
    assert [m.shape[1] for m in maps] == [96, 160, 320, 1280] and maps[0].shape[-1] == 4  # stride 16


def test_view_subset_and_nested_choice():
    feats = torch.arange(2 * 1 * 6, dtype=torch.float32).view(2, 1, 6)  # views L, B, M of width 2
    sub = view_subset(ProbeCache(None, feats), "LBM", "MB")
    assert sub.features[0, 0].tolist() == [4.0, 5.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="not all in"):
        view_subset(ProbeCache(None, feats), "LB", "S")
    per = {"a": {"g1": 0.9, "g2": 0.5, "g3": 0.5}, "b": {"g1": 0.6, "g2": 0.7, "g3": 0.7}}
    # g1 is chosen by g2/g3 only (b), never by its own 0.9
    assert nested_choice(per) == {"g1": "b", "g2": "a", "g3": "a"}


def test_onnx_trunk_matches_torch(tmp_path: Path):
    from lesiondx.us_liver.loso_sweep import OnnxTrunk

    class Tiny(torch.nn.Module):
        features = 4

        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 4, 3)

        def forward(self, grey: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.conv(grey[:, None] / 255.0)).mean((2, 3))

    torch.manual_seed(0)
    module = Tiny().eval()
    trunk = OnnxTrunk(module, tmp_path / "t.onnx", 16)
    x = torch.rand(3, 16, 16) * 255
    assert trunk.features == 4
    torch.testing.assert_close(trunk(x), module(x).detach(), atol=1e-5, rtol=1e-5)


def test_lbc_loso_never_sees_the_left_out_labels():
    """Flipping every label of the left-out group leaves that group's fused scores unchanged (synthetic)."""
    import pandas as pd

    from lesiondx.us_liver.loso_sweep import lbc_loso

    rng = np.random.default_rng(0)
    n = 90
    fold_name = np.array(["g1"] * 30 + ["g2"] * 30 + ["other"] * 30)
    y = np.tile([0, 1, 1], n // 3)
    feats = rng.normal(size=(n, 2, 6)) + y[:, None, None] * 0.3
    size = np.exp(rng.normal(size=n) * 0.5 + 0.3 * y) * 0.1
    table = pd.DataFrame({"patient_id": [f"p{i}" for i in range(n)], "label": np.where(y, "malignant", "benign"),
                          "y": y, "lesion_size_rel": size, "lesion_depth_rel": rng.uniform(0.2, 0.8, n)})
    cfg = load_us_config(None, tta_copies=1, augment_copies=1, probe_cs=(0.1,))
    loso = rng.uniform(0.05, 0.95, n)
    cache = ProbeCache(table, torch.from_numpy(feats.astype(np.float32)))
    fused = lbc_loso(cache, fold_name, cfg, loso)
    assert np.all(np.isfinite(fused) & (fused >= 0) & (fused <= 1))
    flipped = table.assign(y=np.where(fold_name == "g1", 1 - y, y))
    again = lbc_loso(ProbeCache(flipped, cache.features), fold_name, cfg, loso)
    np.testing.assert_allclose(again[fold_name == "g1"], fused[fold_name == "g1"])
    assert not np.allclose(again[fold_name == "g2"], fused[fold_name == "g2"])  # g1 trains the others' fusion
