"""Checks shared by the task gates: modality, photometric interpretation, HU plausibility, series geometry.

Thresholds (measured on the shared data, ``/work/shared/data``, 2026-12-04):

- Raster modality: P(ultrasound) of :mod:`lesiondx.gate.modality`. Measured: AUL frames 0.93–1.00 (held-out
  width groups and 300-px-wide copies included), CT slices of every shared CT series in lung / mediastinum /
  abdomen windows and MedSeg slices ≤ 0.07 (IRCADb renders, never used to fit: ≤ 0.03). A CT task refuses
  P ≥ 0.5 and flags 0.2–0.5; us-liver refuses P < 0.5 and flags 0.5–0.8.
- HU: air (−1100…−900 HU) is 20–61 % of the voxels of every shared CT series and soft tissue (−100…100 HU)
  17–34 %: < 1 % air or < 3 % soft tissue is flagged; a "HU" image with no value below −500 or none above
  −200 HU is refused (not Hounsfield units).
- Geometry: slice step 0.5–10 mm (shared series: 1.6–8 mm), in-plane 0.3–1.5 mm (0.57–0.84 mm), axial
  orientation (slice normal within 30° of the body axis); a position gap > 2.5 × the median step is flagged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from lesiondx.io import MedicalImage, display_grey

from .features import hu_fractions
from .verdict import Check, GateVerdict, combine

FILE_MODALITIES_UNKNOWN = ("", "OT", "SC")  # "other", secondary capture, rasters: modality inferred
P_US_REFUSE_CT = 0.5  # a CT task refuses a raster with P(ultrasound) at or above this
P_US_FLAG_CT = 0.2
P_US_REFUSE_US = 0.3  # us-liver refuses below this
P_US_FLAG_US = 0.6
MIN_AIR, MIN_SOFT = 0.01, 0.03
STEP_MM = (0.5, 10.0)
IN_PLANE_MM = (0.3, 1.5)
MAX_TILT_COS = float(np.cos(np.radians(30)))
GAP_FACTOR = 2.5
COLOUR_FLAG = 0.02  # share of coloured pixels flagged for the greyscale models


def representative_slices(image: MedicalImage, n: int = 3) -> list[np.ndarray]:
    """Up to ``n`` evenly spaced slices (the middle one for n = 1) as display grey 0..255."""
    pixels = image.pixels if image.is_volume else image.pixels[None]
    idx = sorted({int(round(i)) for i in np.linspace(0, len(pixels) - 1, n + 2)[1:-1]}) or [0]
    return [display_grey(pixels[i], image.is_hu, "abdomen") if image.is_hu else pixels[i] for i in idx]


def p_ultrasound_of(image: MedicalImage) -> float:
    """Median P(ultrasound) of up to 3 slices of a raster (no DICOM modality)."""
    from .modality import load_probe, image_features

    return float(np.median(load_probe().p_ultrasound(image_features(representative_slices(image)))))


def modality_check(image: MedicalImage, expected: str) -> Check:
    """``expected`` = ``"CT"`` or ``"US"``: the DICOM Modality must match; files without one (rasters,
    OT, SC) are judged by the raster modality probe."""
    modality = (image.modality or "").upper()
    if modality not in FILE_MODALITIES_UNKNOWN:
        if modality == expected:
            return Check("modality", "ok", modality)
        return Check("modality", "refused", modality,
                     f"DICOM Modality is {modality}; this model reads {expected} only")
    p_us = round(p_ultrasound_of(image), 4)
    value = {"dicom_modality": modality or None, "inferred_p_ultrasound": p_us}
    if expected == "CT":
        if p_us >= P_US_REFUSE_CT:
            return Check("modality", "refused", value, f"the image looks like a B-mode ultrasound frame (P = {p_us:.2f}), not a CT slice")
        if p_us >= P_US_FLAG_CT:
            return Check("modality", "flagged", value, f"not clearly a CT slice (P(ultrasound) = {p_us:.2f})")
        return Check("modality", "ok", value)
    if p_us < P_US_REFUSE_US:
        return Check("modality", "refused", value, f"the image does not look like a B-mode ultrasound frame (P(ultrasound) = {p_us:.2f}; "
                     "it reads as a CT slice or other non-ultrasound image)")
    if p_us < P_US_FLAG_US:
        return Check("modality", "flagged", value, f"not clearly a B-mode ultrasound frame (P(ultrasound) = {p_us:.2f})")
    return Check("modality", "ok", value)


def photometric_check(image: MedicalImage, *, greyscale_model: bool) -> Check:
    """PhotometricInterpretation (DICOM) and the share of coloured pixels (rasters and colour DICOM).
    CT must be MONOCHROME1/2 (colour CT is a screenshot without HU: flagged); for ultrasound, colour
    (Doppler, colour maps) above :data:`COLOUR_FLAG` of the pixels is flagged."""
    photometric = image.metadata.get("PhotometricInterpretation")
    colour = float(image.metadata.get("ColourFraction", 0.0) or 0.0)
    value = {"photometric_interpretation": photometric, "colour_fraction": round(colour, 4)}
    if not greyscale_model and photometric and not photometric.startswith("MONOCHROME"):
        return Check("photometric", "flagged", value, f"a {photometric} CT image is a screenshot without Hounsfield units")
    if colour > COLOUR_FLAG:
        return Check("photometric", "flagged", value,
                     f"{colour:.0%} of the pixels are coloured (Doppler / colour map); the model was validated on greyscale images")
    return Check("photometric", "ok", value)


def hu_check(image: MedicalImage) -> Check:
    """HU plausibility of a CT image read with a modality LUT; 8-bit slices are not judged."""
    if not image.is_hu:
        return Check("hu", "ok", {"is_hu": False, "note": "windowed slices: Hounsfield units not available"})
    pixels = image.pixels[..., ::4, ::4]  # every 4th row and column: the same shares, 16× faster
    fractions = {k: round(v, 4) for k, v in hu_fractions(pixels).items()}
    lo, hi = float(np.percentile(pixels, 1)), float(np.percentile(pixels, 99))
    value = {"is_hu": True, **fractions, "p1_hu": round(lo, 1), "p99_hu": round(hi, 1)}
    if lo > -500 or hi < -200:
        return Check("hu", "refused", value, f"values {lo:.0f}..{hi:.0f} are not Hounsfield units of a body CT (no air, or no tissue)")
    if fractions["air"] < MIN_AIR or fractions["soft_tissue"] < MIN_SOFT:
        return Check("hu", "flagged", value, f"implausible HU mix: air {fractions['air']:.1%}, soft tissue {fractions['soft_tissue']:.1%}")
    return Check("hu", "ok", value)


def median_slice_step(image: MedicalImage) -> float | None:
    """Median distance (mm) between neighbouring slice positions; ``None`` without positions for 3+ slices."""
    if image.positions is None or len(image.positions) < 3:
        return None
    return float(np.median(np.abs(np.diff(np.asarray(image.positions, float)))))


def normal_cosines(orientation: Sequence[float]) -> np.ndarray:
    """|cos| of the slice normal (ImageOrientationPatient) with the patient's x (left), y (posterior) and z (head)
    axes; all 0 for a degenerate orientation."""
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:6], float))
    return np.abs(normal) / max(1e-9, float(np.linalg.norm(normal)))


def geometry_check(image: MedicalImage, *, min_slices: int = 1) -> Check:
    """Slice count, spacing and orientation of a CT series (flags, never refuses)."""
    problems: list[str] = []
    value: dict[str, object] = {"n_slices": image.n_slices}
    if image.n_slices < min_slices:
        problems.append(f"{image.n_slices} slice(s); the model's rule needs at least {min_slices}")
    if image.spacing is not None:
        value["spacing_mm"] = [round(float(s), 3) for s in image.spacing]
        row, col = image.spacing[-2], image.spacing[-1]
        if not (IN_PLANE_MM[0] <= min(row, col) and max(row, col) <= IN_PLANE_MM[1]):
            problems.append(f"pixel spacing {row:.2f}×{col:.2f} mm is outside {IN_PLANE_MM[0]}–{IN_PLANE_MM[1]} mm")
    if image.positions is not None and len(image.positions) > 2:
        steps = np.abs(np.diff(np.asarray(image.positions, float)))
        median = median_slice_step(image)
        value["slice_step_mm"] = round(median, 3)
        if not STEP_MM[0] <= median <= STEP_MM[1]:
            problems.append(f"slice step {median:.1f} mm is outside {STEP_MM[0]}–{STEP_MM[1]} mm")
        if median > 0 and steps.max() > GAP_FACTOR * median:
            value["largest_gap_mm"] = round(float(steps.max()), 1)  # slices missing: a negative call cannot cover them
            problems.append(f"a gap of {steps.max():.1f} mm between slices (median step {median:.1f} mm)")
    if image.orientation is not None and len(image.orientation) == 6:
        cos = float(normal_cosines(image.orientation)[2])
        value["axial_cos"] = round(cos, 3)
        if cos < MAX_TILT_COS:
            problems.append("slices are not axial (sagittal, coronal or strongly tilted)")
    return Check("geometry", "flagged" if problems else "ok", value, "; ".join(problems))


def ct_gate(task: str, image: MedicalImage, body_region: Callable[[MedicalImage], Check], *, min_slices: int = 1,
            task_checks: tuple[Callable[[MedicalImage], Check], ...] = ()) -> GateVerdict:
    """A CT task's verdict: modality first (a refusal stops there), then photometric, HU, geometry and,
    when nothing is refused, the task's ``body_region`` check and its other ``task_checks``."""
    modality = modality_check(image, "CT")
    if modality.status == "refused":
        return combine(task, [modality])
    checks = [modality, photometric_check(image, greyscale_model=False), hu_check(image),
              geometry_check(image, min_slices=min_slices)]
    if not any(c.status == "refused" for c in checks):
        checks += [body_region(image), *(check(image) for check in task_checks)]
    return combine(task, checks)
