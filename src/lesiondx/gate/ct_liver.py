"""ct-liver input gate: an abdominal CT with liver-density tissue, not a chest-only series, not ultrasound.

Liver presence (measured on the shared data): share of the body's right-anterior quarter at 40–200 HU
(liver parenchyma, plain or enhanced) ≥ 0.30 on 57–77 % of the slices of the two IRCADb abdominal series
and on 0–30 % of the four chest series; its maximum over slices is 0.26–0.80 on every shared series. A
HU series is refused when no slice reaches 0.10 (no liver-density tissue at all) and flagged when it is
mostly chest: lungs (see :mod:`lesiondx.gate.ct_covid`) on ≥ 55 % of the slices (chest series 64–73 %,
IRCADb 19–32 %); refused when no slice of three or more reaches 0.30 (no slice at liver level: the CT-MD P002 chest
series, which stops above the liver, was flagged only and reported a "liver" finding; the three chest series that
reach the upper abdomen have 15–30 % of their slices at liver level and stay flagged).
How much of the liver the series shows is judged after the gate, on the liver mask
(:func:`lesiondx.ct_liver.coverage.craniocaudal_check`): a share of slices at liver level would flag every
abdomen–pelvis CT; the fraction is still reported here (``slices_with_liver_tissue``).
Slice geometry (ct-liver's own, beyond the shared flags): a coronal or sagittal series (a reformat) is refused (the
liver rule and detector read axial anatomy); a slice normal tilted over 2° from the body axis (gantry tilt) is flagged
(read as a straight stack, not de-sheared); slices over 2.5 mm apart are flagged (a lesion must show on 2 adjacent
slices, so one shorter than 2 steps can be missed; rules checked on IRCADb's 1.6 mm slices only); repeated slice
positions (two stacks mixed in one series) are refused.
Windowed 8-bit slices: region not judged (HU unknown; said in the checks). A CT stored without RescaleSlope /
RescaleIntercept (values 0..4095, neither HU nor display grey) is refused (was read as 8-bit slices in a guessed
window).
"""

from __future__ import annotations

import numpy as np

from lesiondx.io import MedicalImage
from lesiondx.io.series import spread_indices

from .checks import MAX_TILT_COS, ct_gate, median_slice_step, normal_cosines
from .ct_covid import LUNG_SLICE_HU, lung_fractions, pixel_value_check
from .features import liver_tissue_fraction_hu
from .verdict import Check, GateVerdict

TASK = "ct-liver"
LIVER_SLICE = 0.30
NO_LIVER_MAX = 0.10
CHEST_FLAG, CHEST_ONLY = 0.55, 0.90
MAX_STEP_MM = 2.5  # slices further apart are flagged (IRCADb, where the rules were checked: 1.6 mm)
MIN_LESION_SLICES = 2  # the detector's chain: a lesion on at least 2 adjacent slices
TILT_FLAG_DEG = 2.0
DARK_LIVER = "or its liver is below 40 HU (e.g. a fatty liver without contrast), which this model cannot read"


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
        return Check("body_region", "refused", value,
                     f"no liver-density tissue (40–200 HU) on any slice: not an abdominal CT at liver level, {DARK_LIVER}")
    if liver_share == 0 and len(idx) >= 3:  # no slice at liver level: the series stops above (or misses) the liver
        what = "a chest-only series" if chest >= CHEST_ONLY else f"the series does not reach the liver, {DARK_LIVER}"
        return Check("body_region", "refused", value,
                     f"no slice at liver level (liver-density tissue on ≥ {LIVER_SLICE:.0%} of the right-anterior body "
                     f"on none of them; lungs on {chest:.0%} of the slices): {what}")
    if chest >= CHEST_FLAG and len(idx) >= 3:
        return Check("body_region", "flagged", value, f"mostly a chest series (lungs on {chest:.0%} of the slices): the liver is only partly covered")
    return Check("body_region", "ok", value)


def slice_geometry_check(image: MedicalImage) -> Check:
    """Refuses coronal / sagittal slices; flags a gantry tilt and slices too far apart for small lesions."""
    value: dict[str, object] = {}
    problems: list[str] = []
    if image.orientation is not None and len(image.orientation) == 6:
        cosines = normal_cosines(image.orientation)
        tilt = float(np.degrees(np.arccos(np.clip(cosines[2], 0.0, 1.0))))
        value["tilt_deg"] = round(tilt, 1)
        if cosines[2] < MAX_TILT_COS:
            plane = ("sagittal", "coronal", "oblique")[int(np.argmax(cosines))]
            return Check("slice_geometry", "refused", value,
                         f"{plane} slices (normal {tilt:.0f}° from the body axis, a reformat?): ct-liver reads axial "
                         "slices only; give the axial series")
        if tilt > TILT_FLAG_DEG:
            problems.append(f"slices tilted {tilt:.0f}° from axial (gantry tilt): read as a straight stack, not "
                            "de-sheared; craniocaudal sizes are along the slice normal")
    if image.positions is not None:
        repeats = len(image.positions) - len(set(np.round(np.asarray(image.positions, float), 2)))
        if repeats:  # copies of one file are already dropped by the reader: these are different images
            value["repeated_positions"] = repeats
            return Check("slice_geometry", "refused", value,
                         f"{repeats} slice position{'s occur' if repeats > 1 else ' occurs'} twice: two stacks "
                         "(e.g. two phases) are mixed in one series and cannot be ordered; give each series in its "
                         "own folder")
    step = median_slice_step(image)
    if step is not None:
        value["slice_step_mm"] = round(step, 2)
        if step > MAX_STEP_MM:
            problems.append(f"slices {step:.1f} mm apart: a lesion must show on {MIN_LESION_SLICES} adjacent slices, "
                            f"so lesions shorter than about {MIN_LESION_SLICES * step:.1f} mm craniocaudally can be "
                            f"missed (rules checked on 1.6 mm slices only)")
    return Check("slice_geometry", "flagged" if problems else "ok", value, "; ".join(problems))


def gate(image: MedicalImage) -> GateVerdict:
    """The ct-liver verdict for one study (series or slice) read by :mod:`lesiondx.io`."""
    return ct_gate(TASK, image, body_region_check, task_checks=(lambda im: pixel_value_check(im, "abdomen"),
                                                                   slice_geometry_check))
