"""Mask-derived ultrasonic factors (Model_LBC candidates): signs and ranges on drawn frames."""

from __future__ import annotations

import numpy as np
import pytest

from lesiondx.us_liver.factors import FACTOR_NAMES, lesion_factors
from lesiondx.us_liver.rois import UsFrame


def _frame(lesion_grey: float, below_grey: float | None = None, ellipse: tuple[int, int] = (30, 30)) -> UsFrame:
    rng = np.random.default_rng(0)
    grey = rng.normal(120, 5, (300, 400)).astype(np.float32)
    yy, xx = np.mgrid[:300, :400]
    lesion = ((yy - 120) / ellipse[0]) ** 2 + ((xx - 200) / ellipse[1]) ** 2 <= 1
    grey[lesion] = lesion_grey
    if below_grey is not None:
        grey[121 + ellipse[0] : 121 + ellipse[0] + 20, 200 - ellipse[1] : 200 + ellipse[1]] = below_grey
    liver = np.zeros_like(lesion)
    liver[20:290, 20:390] = True
    return UsFrame(grey, lesion, liver, liver.copy())


def test_dark_round_lesion():
    f = lesion_factors(_frame(60.0))
    assert set(f) == set(FACTOR_NAMES)
    assert f["echo_contrast"] == pytest.approx(-0.5, abs=0.05)  # half as bright as the liver
    assert f["circularity"] > 0.85 and f["solidity"] > 0.95 and f["aspect_ratio"] > 0.95
    assert f["margin_sharpness"] > 0.05 and abs(f["posterior_enhancement"]) < 0.05
    assert f["lesion_size_rel"] == pytest.approx(np.sqrt(np.pi * 30 * 30) / 370, rel=0.05)


def test_bright_flat_lesion_with_posterior_enhancement():
    f = lesion_factors(_frame(200.0, below_grey=180.0, ellipse=(10, 40)))
    assert f["echo_contrast"] > 0.5 and f["posterior_enhancement"] > 0.3
    assert f["aspect_ratio"] == pytest.approx(0.25, abs=0.05)
    with pytest.raises(ValueError, match="empty"):
        lesion_factors(_frame(60.0), lesion=np.zeros((300, 400), bool))
