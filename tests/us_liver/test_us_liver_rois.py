"""Fixed-scale ultrasound ROIs, user ROIs, mask-derived factors, CAM placement (synthetic arrays)."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.data import Box
from lesiondx.us_liver.config import load_us_config
from lesiondx.us_liver.inference import cam_to_frame, crop_region, parse_roi
from lesiondx.us_liver.rois import UsFrame, augment, fixed_side, lesion_crop, sector_box, ultrasonic_factors


def _frame_with_lesion(radius: int) -> np.ndarray:
    yy, xx = np.mgrid[:400, :600]
    return (((yy - 200) ** 2 + (xx - 300) ** 2) < radius**2).astype(np.float32) * 255


def test_fixed_scale_crop_does_not_magnify_small_lesions():
    side = fixed_side(Box(50, 0, 550, 400), 0.4)  # 200 px
    small = lesion_crop(_frame_with_lesion(10), Box(290, 190, 310, 210), side, 100, 0.15)
    large = lesion_crop(_frame_with_lesion(40), Box(260, 160, 340, 240), side, 100, 0.15)
    # lesion fraction of the crop scales with lesion area (not magnified to fill it)
    frac_small, frac_large = (small > 127).mean(), (large > 127).mean()
    assert frac_small == pytest.approx(np.pi * 10**2 / side**2, rel=0.25)
    assert frac_large / frac_small == pytest.approx(16, rel=0.2)


def test_sector_box_falls_back_to_bright_fan():
    grey = np.zeros((100, 120), np.float32)
    grey[20:90, 30:100] = 80
    assert sector_box(UsFrame(grey, None, None, None)).as_list() == [30, 20, 100, 90]


def test_ultrasonic_factors():
    lesion = np.zeros((400, 600), bool)
    lesion[190:210, 290:310] = True  # 20x20 px, centre y = 200
    f = ultrasonic_factors(lesion, Box(100, 100, 500, 300))
    assert f["lesion_size_rel"] == pytest.approx(20 / 400)
    assert f["lesion_depth_rel"] == pytest.approx(0.5)


def test_parse_roi_forms_and_errors(tmp_path):
    mask = parse_roi("10,20,30,40", (100, 100))
    assert mask.sum() == 1200 and mask[20, 10] and not mask[60, 10]
    assert parse_roi([10, 20, 30, 40], (100, 100)).sum() == 1200
    assert parse_roi(None, (100, 100)) is None
    with pytest.raises(ValueError, match="x,y,w,h"):
        parse_roi("10,20,abc,5", (100, 100))
    with pytest.raises(ValueError, match="outside"):
        parse_roi("200,200,5,5", (100, 100))
    from PIL import Image

    path = tmp_path / "roi.png"
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(path)
    with pytest.raises(ValueError, match=r"roi.png: ROI mask is \(50, 50\)"):
        parse_roi(str(path), (100, 100))


def test_cam_is_pasted_where_the_crop_was_taken():
    cam = np.zeros((8, 8), np.float32)
    cam[:, 4:] = 1.0  # right half of the crop is hot
    region = crop_region(Box(40, 40, 60, 60), side=40, margin=0.15)  # centre (50, 50), side 40
    full = cam_to_frame(cam, (100, 120), region)
    assert full[50, 65] > 0.9 and full[50, 35] < 0.1 and full[10, 10] == 0


def test_augment_keeps_shape_and_range():
    crop = np.full((64, 64), 120, np.float32)
    out = augment(crop, np.random.default_rng(0))
    assert out.shape == crop.shape and 0 <= out.min() and out.max() <= 255 and out.std() > 0


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="branches"):
        load_us_config(None, branches="X")
    with pytest.raises(ValueError, match="folds"):
        load_us_config(None, folds=2)
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nnot_a_key: 1\n")
    with pytest.raises(ValueError, match="not_a_key"):
        load_us_config(path)


def test_trivialaugment_policy_is_reproducible_and_leaves_torch_rng_alone():
    import torch

    crop = np.random.default_rng(0).uniform(0, 255, (48, 48)).astype(np.float32)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    outs = [augment(crop, np.random.default_rng(s), policy="trivialaugment") for s in (7, 7, 8, 9, 10)]
    assert torch.equal(torch.rand(1), before)  # the caller's torch random stream is untouched
    assert np.array_equal(outs[0], outs[1])  # same numpy seed, same crop
    assert all(o.shape == crop.shape and o.dtype == np.float32 and 0 <= o.min() and o.max() <= 255 for o in outs)
    assert sum(not np.allclose(o, crop) and not np.allclose(o, crop[:, ::-1]) for o in outs[2:]) >= 1
    with pytest.raises(ValueError, match="policy"):
        augment(crop, np.random.default_rng(0), policy="autoaugment")
