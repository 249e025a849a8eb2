"""ct-liver input gate: an abdominal CT with liver-density tissue, not a chest-only series, not ultrasound.

Liver presence (measured on the shared data): share of the body's right-anterior quarter at 40–200 HU
(liver parenchyma, plain or enhanced) ≥ 0.30 on 57–77 % of the slices of the two IRCADb abdominal series
and on 0–30 % of the four chest series; its maximum over slices is 0.26–0.80 on every shared series. A
HU series is refused when no slice reaches 0.10 (no liver-density tissue at all) and flagged when it is
mostly chest: lungs (see :mod:`lesiondx.gate.ct_covid`) on ≥ 55 % of the slices (chest series 64–73 %,
IRCADb 19–32 %); refused when no slice of three or more reaches 0.30 (no slice at liver level: the CT-MD P002 chest
series, which stops above the liver, was flagged only and reported a "liver" finding; the three chest series that
reach the upper abdomen have 15–30 % of their slices at liver level and stay flagged).
Windowed 8-bit slices: region not judged (HU unknown; said in the checks).
"""

from __future__ import annotations

import numpy as np

from lesiondx.io import MedicalImage
from lesiondx.io.series import spread_indices

from .checks import ct_gate
from .ct_covid import LUNG_SLICE_HU, lung_fractions
from .features import liver_tissue_fraction_hu
from .verdict import Check, GateVerdict

TASK = "ct-liver"
LIVER_SLICE = 0.30
NO_LIVER_MAX = 0.10
CHEST_FLAG, CHEST_ONLY = 0.55, 0.90


def body_region_check(image: MedicalImage, max_slices: int = 40) -> Check:
    if not image.is_hu:
        return Check("body_region", "ok", {"judged": False, "note": "windowed slices: liver density not judged"})
    pixels = image.pixels if image.is_volume else image.pixels[None]
    idx = spread_indices(len(pixels), max_slices)
    liver = np.array([liver_tissue_fraction_hu(pixels[i]) for i in idx])
    chest = float((lung_fractions(image, max_slices) >= LUNG_SLICE_HU).mean())
    liver_share = float((liver >= LIVER_SLICE).mean())
    value = {"judged": True, "slices_with_liver_tissue": round(liver_share, 3),
             "max_liver_tissue_fraction": round(float(liver.max()), 3), "slices_with_lungs": round(chest, 3)}
    if liver.max() < NO_LIVER_MAX:
        return Check("body_region", "refused", value, "no liver-density tissue (40–200 HU) on any slice: not an abdominal CT at liver level")
    if liver_share == 0 and len(idx) >= 3:  # no slice at liver level: the series stops above (or misses) the liver
        what = "a chest-only series" if chest >= CHEST_ONLY else "the series does not reach the liver"
        return Check("body_region", "refused", value,
                     f"no slice at liver level (liver-density tissue on ≥ {LIVER_SLICE:.0%} of the right-anterior body "
                     f"on none of them; lungs on {chest:.0%} of the slices): {what}")
    if chest >= CHEST_FLAG and len(idx) >= 3:
        return Check("body_region", "flagged", value, f"mostly a chest series (lungs on {chest:.0%} of the slices): the liver is only partly covered")
    return Check("body_region", "ok", value)


def gate(image: MedicalImage) -> GateVerdict:
    """The ct-liver verdict for one study (series or slice) read by :mod:`lesiondx.io`."""
    return ct_gate(TASK, image, body_region_check)
