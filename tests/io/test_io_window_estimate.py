"""Guessing the display window of 8-bit CT slices from their fat and muscle peaks."""

import numpy as np
import pytest

from lesiondx.io import apply_window, estimate_window, read_study


def _phantom(seed: int = 0) -> np.ndarray:
    """SYNTHETIC abdomen in HU: air, a fat ring (−100 HU) around muscle (+50) with an enhanced organ (+110)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:256, :256]
    ell = ((xx - 128) / 110.0) ** 2 + ((yy - 128) / 80.0) ** 2
    hu = np.full((256, 256), -1000.0)
    hu[ell <= 1] = -100.0
    hu[ell <= 0.55] = 50.0
    hu[(ell <= 0.3) & (xx < 128)] = 110.0
    return np.stack([hu + rng.normal(0, 12, hu.shape) for _ in range(4)]).astype(np.float32)


@pytest.mark.parametrize("center,width", [(40, 400), (40, 350), (50, 450), (50, 500)])
def test_soft_tissue_windows_are_recovered_on_a_phantom(center, width):
    est = estimate_window(np.round(apply_window(_phantom(), (center, width))))
    assert est.window is not None, est.reason
    assert est.window.width == pytest.approx(width, rel=0.04)
    assert est.window.center == pytest.approx(center, abs=8)
    assert est.fat_grey < est.soft_grey  # muscle, not the brighter enhanced organ, is the soft-tissue peak


@pytest.mark.parametrize("window,why", [((60, 160), ""), ((60, 300), ""), ((-600, 1500), "air"), ((40, 400), "body")])
def test_windows_that_cannot_be_told_say_why(window, why):
    """Fat clipped to black (liver window, or level 60 / width 300 on this phantom's −100 HU fat), a lung
    window (air is grey) and an empty image give no estimate, with a reason, rather than a wrong one."""
    grey = np.round(apply_window(_phantom(), window))
    if why == "body":
        grey = np.zeros_like(grey)  # nothing but black
    est = estimate_window(grey)
    assert est.window is None and est.reason
    assert why in est.reason


@pytest.mark.parametrize("center,width", [(40, 350), (50, 500)])
def test_real_chest_ct_exports_are_recovered_within_ten_percent(ctmd_folder, center, width):
    """Real CT-MD series (HU in DICOM) exported 8-bit with a soft-tissue window, then estimated."""
    hu = read_study(ctmd_folder / "series" / "normal001").pixels.astype(np.float32)[::6]
    est = estimate_window(np.round(apply_window(hu, (center, width))))
    assert est.window is not None, est.reason
    assert est.window.width == pytest.approx(width, rel=0.10)
    assert est.window.center == pytest.approx(center, abs=30)
