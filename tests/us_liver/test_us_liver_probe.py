"""Model_LBM multi-level probe: trunk levels, logistic heads, fp16 round trip, inner-validation C."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from lesiondx.models import build_backbone, load_checkpoint, save_checkpoint
from lesiondx.us_liver.config import load_us_config
from lesiondx.us_liver.probe import PooledLite, ProbeEnsemble, ProbeHead, fit_probe, probe_scores, view_crops
from lesiondx.us_liver.rois import UsFrame


@pytest.fixture(scope="module")
def trunk() -> PooledLite:
    torch.manual_seed(0)
    return PooledLite(("b5", "head"))


def test_pooled_levels_match_the_backbone(trunk: PooledLite):
    grey = torch.rand(2, 96, 96) * 255
    feats = trunk(grey)
    assert feats.shape == (2, 192 + 1280) and trunk.features == 192 + 1280
    # the 'head' level is exactly the backbone's pooled output (same weights, same normalisation)
    backbone = build_backbone("efficientnet_lite0")
    x = (grey[:, None].expand(-1, 3, -1, -1) / 255.0 - torch.tensor(backbone.mean).view(1, 3, 1, 1)) / torch.tensor(
        backbone.std).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = backbone.module.eval()(x)
    assert torch.allclose(feats[:, 192:], ref, atol=1e-4)
    assert not any(p.requires_grad for p in trunk.parameters())
    with pytest.raises(ValueError, match="levels"):
        PooledLite(("b9",))


def _toy(n: int = 60, k: int = 3, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, k, d)) * 3 + 40  # offset and scale like pooled activations
    x[:, :, 0] += 4 * y[:, None]  # one informative feature
    return x, y


def test_fit_probe_learns_and_picks_c_on_validation_only():
    x, y = _toy()
    cfg = load_us_config(None, probe_cs=(1e-4, 1.0), tta_copies=2, augment_copies=2, probe_refit=False)
    train, val = np.arange(0, 40), np.arange(40, 60)
    head = fit_probe(x, y, train, val, cfg)
    assert [c for c, _ in head.c_curve] == [1e-4, 1.0] and head.c in (1e-4, 1.0)
    assert head.val_auc == max(a for _, a in head.c_curve) > 0.9
    assert np.allclose(head.val_scores, probe_scores(x[val], head, 2))
    # refit on train + validation: same C, new coefficients, validation scores of the selection head kept
    refit = fit_probe(x, y, train, val, replace(cfg, probe_refit=True))
    assert refit.c == head.c and np.array_equal(refit.val_scores, head.val_scores)
    assert not np.allclose(refit.coef, head.coef)
    # the validation scores decide: with validation labels flipped, the head looks worse than chance there
    flipped = y.copy()
    flipped[val] = 1 - flipped[val]
    assert fit_probe(x, flipped, train, val, cfg).val_auc < 0.5


def test_probe_head_survives_fp16_checkpoint(tmp_path):
    x, y = _toy(d=600)
    cfg = load_us_config(None, probe_cs=(0.1,), tta_copies=0, augment_copies=2)
    head = fit_probe(x, y, np.arange(40), np.arange(40, 60), cfg)
    module = ProbeHead.from_fit(head)
    save_checkpoint(tmp_path / "h.pt", {"member0": module}, {})
    states, _ = load_checkpoint(tmp_path / "h.pt")
    back = ProbeHead(600)
    back.load_state_dict(states["member0"])
    xt = torch.as_tensor(x[:, 0], dtype=torch.float32)
    with torch.no_grad():
        a, b = module(xt)[:, 0].numpy(), back(xt)[:, 0].numpy()
    assert np.allclose(a, ((x[:, 0] - head.mean) / head.scale) @ head.coef + head.intercept, atol=1e-3)
    assert np.abs(a - b).max() < 0.05  # fp16 storage changes logits only slightly


def test_view_crops_and_ensemble_shapes(trunk: PooledLite):
    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 255, (200, 260)).astype(np.float32)
    lesion = np.zeros(grey.shape, bool)
    lesion[90:100, 120:132] = True  # small bright lesion: L keeps it small, M magnifies it
    grey[lesion] = 250.0
    liver = np.zeros(grey.shape, bool)
    liver[20:180, 20:240] = True
    frame = UsFrame(grey, lesion, liver, None)
    cfg = load_us_config(None, crop_size=64, views="LBM", augment_copies=2, tta_copies=2)
    crops = view_crops(frame, cfg, np.random.default_rng(1), 2)
    assert list(crops) == ["L", "B", "M"] and all(c.shape == (3, 64, 64) for c in crops.values())
    # the magnified crop is mostly lesion, the fixed-scale one mostly surroundings
    assert crops["M"][0].mean() > 180 > crops["L"][0].mean()
    again = view_crops(frame, cfg, np.random.default_rng(1), 2)
    assert all(np.array_equal(crops[v], again[v]) for v in crops)  # deterministic TTA for a fixed seed
    only_lm = view_crops(frame, replace(cfg, views="LM"), np.random.default_rng(1), 0)
    assert list(only_lm) == ["L", "M"]
    members = [ProbeHead(trunk.features * 3) for _ in range(2)]
    ens = ProbeEnsemble(trunk, members, "LBM").eval()
    with torch.no_grad():
        p = ens({v: torch.from_numpy(c) for v, c in crops.items()})
    assert p.shape == (3,) and bool(((p > 0) & (p < 1)).all())


def test_config_checks_probe_settings():
    with pytest.raises(ValueError, match="head"):
        load_us_config(None, head="svm")
    with pytest.raises(ValueError, match="views"):
        load_us_config(None, views="LX")
    assert load_us_config(None, head="dcnn", views="LX").head == "dcnn"  # views unused by the dcnn head
