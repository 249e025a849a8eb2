"""Studies from windowed slices: approximate HU and the pixel-spacing estimate."""

import numpy as np
import pytest

from lesiondx.ct_liver.study import BODY_WIDTH_MM, as_windowed, estimate_spacing_mm, grey_to_hu
from lesiondx.io import apply_window


def _body(width_px: int, size: int = 512) -> np.ndarray:
    """SYNTHETIC axial slices in HU: an elliptical fat-rimmed body ``width_px`` wide in air."""
    yy, xx = np.mgrid[:size, :size]
    ell = ((xx - size / 2) / (width_px / 2)) ** 2 + ((yy - size / 2) / (0.35 * size)) ** 2
    hu = np.where(ell <= 1, -100.0, -1000.0)
    hu[ell <= 0.8] = 50.0
    return np.stack([hu, hu]).astype(np.float32)


@pytest.mark.parametrize("width_px", [300, 450])
def test_spacing_from_body_width_survives_windowing(width_px):
    hu = _body(width_px)
    assert estimate_spacing_mm(hu) == pytest.approx(BODY_WIDTH_MM / width_px, rel=0.02)
    windowed = grey_to_hu(apply_window(hu, "abdomen"))  # air is clipped to −160 HU in a PNG
    assert estimate_spacing_mm(windowed) == pytest.approx(BODY_WIDTH_MM / width_px, rel=0.02)
    assert estimate_spacing_mm(np.full((1, 64, 64), -1000.0)) is None  # no body: no guess


def test_as_windowed_drops_exact_hu_and_spacing():
    from lesiondx.ct_liver.study import Study

    hu = _body(400)
    study = Study("s", "p", apply_window(hu, "abdomen"), hu, True, 0.6)
    win = as_windowed(study)
    assert not win.hu_exact and win.spacing_estimated and win.spacing_mm == pytest.approx(0.8, rel=0.02)
    assert win.hu.min() >= -160.5 and np.allclose(win.hu[0, 256, 256], 50, atol=2)
