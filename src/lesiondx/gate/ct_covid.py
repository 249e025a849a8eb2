"""ct-covid input gate: a chest CT (lungs on most slices), not ultrasound, MR or an abdominal series.

Body region (measured on the shared data): lung share of the body cross-section (< −400 HU inside the
filled body outline) ≥ 0.10 on 64–73 % of the slices of the four shared chest-CT series (P002,
normal001, A0001, A0002) and on 19–32 % of the two abdominal IRCADb series (which include the lung
bases). HU series: refused below 0.40, flagged below 0.55. A longer HU scan that holds the whole chest (the slices
with lungs form one run with lung-free slices before and after it: chest–abdomen–pelvis) is flagged instead, and
predict analyses its chest part (:func:`chest_part`); an abdominal scan whose first slice shows the lung bases is not. Windowed 8-bit slices (no HU): the ct-covid
lung field covers ≥ 5 % of 97 of 98 MedSeg slices; a series with lungs on fewer than 40 % of its slices
is flagged (the window is unknown, so never refused on this alone). One or two slices: a slice with
lungs on < 5 % of the body is flagged.

Lung coverage: a HU series whose first or last slice still shows lungs covers only part of them (flagged; see
:func:`lung_coverage_check`).

Refused besides: coronal or sagittal slices (:func:`plane_check`), values that are neither HU nor 8-bit grey (a
CT without rescale tags, :func:`pixel_value_check`) and 8-bit slices in a soft-tissue window (:func:`window_check`).

Slice step (validated range, not plausibility): the patient rule (k consecutive slices) was chosen and checked on
series of 2 mm (CT-MD) and 5 mm (A0001) slices; a DICOM series whose slices are further apart, or closer than
1.8 mm (thin-slice reconstructions: k slices of 0.6 mm span 3 mm of lung, not the 10 mm k = 5 spans on CT-MD), is
flagged (the thin-slice flag added 2026-12-06 from the geometry alone, no result looked at). Added
2026-12-06 after the one 8 mm series checked (A0002, lung cancer) was a false positive in leave-one-patient-out:
on thick slices a solid mass blurs into ground-glass-like density and a few slices span centimetres.
"""

from __future__ import annotations

import numpy as np

from lesiondx.io import MedicalImage
from lesiondx.io.series import spread_indices

from .checks import ct_gate, median_slice_step, normal_cosines
from .features import lung_fraction_grey, lung_fraction_hu
from .verdict import Check, GateVerdict

TASK = "ct-covid"
LUNG_SLICE_HU = 0.10  # a slice "shows lungs" at this lung share of the body (HU)
LUNG_SLICE_GREY = 0.05  # ... of the slice area (8-bit lung field)
CROPPED_MAX_DARK = 0.85  # 8-bit slice whose un-pruned dark share is below this is taken as cropped to the chest
REFUSE_CHEST_SHARE, FLAG_CHEST_SHARE = 0.40, 0.55
FEW_SLICES = 3  # the patient rule needs k consecutive slices (3 at least in every configuration shipped so far)
VALIDATED_STEP_MM = 5.0  # thickest slice step the patient rule was validated on (module docstring)
VALIDATED_MIN_STEP_MM = 2.0  # thinnest (CT-MD); a step below 90 % of it is flagged
VALIDATED_STEPS_MM = (0.9 * VALIDATED_MIN_STEP_MM, VALIDATED_STEP_MM)  # slice steps (mm) not flagged


def _grey_lung_fraction(grey: np.ndarray) -> float:
    from lesiondx.ct_covid.config import read_config

    threshold = read_config(None).lung_threshold_grey
    inside = lung_fraction_grey(grey, threshold, remove_border_air=True)
    if inside >= LUNG_SLICE_GREY:
        return inside
    dark = lung_fraction_grey(grey, threshold, remove_border_air=False)  # slices cropped to the chest
    return dark if dark <= CROPPED_MAX_DARK else inside


def lung_fractions(image: MedicalImage, max_slices: int = 40) -> np.ndarray:
    """Per-slice lung fraction of up to ``max_slices`` evenly spaced slices, first and last included
    (:func:`~lesiondx.io.series.spread_indices`)."""
    pixels = image.pixels if image.is_volume else image.pixels[None]
    idx = spread_indices(len(pixels), max_slices)
    measure = lung_fraction_hu if image.is_hu else _grey_lung_fraction
    return np.array([measure(pixels[i]) for i in idx])


def body_region_check(image: MedicalImage, fractions: np.ndarray | None = None) -> Check:
    """Share of the sampled slices that show lungs (``fractions``: :func:`lung_fractions` of ``image`` when
    already measured)."""
    fractions = lung_fractions(image) if fractions is None else fractions
    cut = LUNG_SLICE_HU if image.is_hu else LUNG_SLICE_GREY
    share = float((fractions >= cut).mean())
    value = {"slices_with_lungs": round(share, 3), "max_lung_fraction": round(float(fractions.max()), 3),
             "slices_measured": int(len(fractions))}
    if len(fractions) < FEW_SLICES:
        if share == 0:
            return Check("body_region", "flagged", value, "no lung field on the slice(s): not a chest CT slice at lung level")
        return Check("body_region", "ok", value)
    chest = chest_part(fractions, len(image.pixels) if image.is_volume else 1) if image.is_hu else None
    if share < FLAG_CHEST_SHARE and chest is not None:
        return Check("body_region", "flagged", value | {"chest_slices": list(chest)},
                     f"lungs on {share:.0%} of the slices, all within slices {chest[0]}–{chest[1]}: a longer scan that "
                     "holds the whole chest (e.g. chest–abdomen–pelvis); those slices are analysed (validated on chest "
                     "CTs only)")
    if image.is_hu and share < REFUSE_CHEST_SHARE:
        return Check("body_region", "refused", value,
                     f"lungs on only {share:.0%} of the slices: not a chest CT (abdominal or other region)")
    if share < (FLAG_CHEST_SHARE if image.is_hu else REFUSE_CHEST_SHARE):
        return Check("body_region", "flagged", value, f"lungs on only {share:.0%} of the slices: partly outside the chest")
    return Check("body_region", "ok", value)


def chest_part(fractions: np.ndarray, n_slices: int) -> tuple[int, int] | None:
    """First and last slice (indices of the series) of the chest in a longer HU scan: the sampled slices showing
    lungs form one run with a lung-free sample before and after it; the range reaches to those lung-free samples,
    since the lungs end somewhere between two samples. ``None`` when the lungs touch an end of the series (an
    abdominal scan with the lung bases) or lie in several runs."""
    lungs = np.asarray(fractions) >= LUNG_SLICE_HU
    where = np.flatnonzero(lungs)
    if len(where) < FEW_SLICES or lungs[0] or lungs[-1] or where[-1] - where[0] + 1 != len(where):
        return None
    idx = spread_indices(n_slices, len(fractions))
    return int(idx[where[0] - 1]), int(idx[where[-1] + 1])


def slice_step_check(image: MedicalImage) -> Check:
    """Flags a DICOM series whose median slice step (mm) is above ``VALIDATED_STEP_MM`` or below 90 % of
    ``VALIDATED_MIN_STEP_MM`` (a 0.6–1.25 mm thin-slice series: k consecutive slices are a few mm); slices without
    positions (PNG/JPG, a single slice) cannot be judged and pass with the step unknown."""
    step = median_slice_step(image)
    if step is None:
        return Check("slice_step", "ok", {"slice_step_mm": None})
    value = {"slice_step_mm": round(step, 2), "validated_min_mm": VALIDATED_MIN_STEP_MM,
             "validated_max_mm": VALIDATED_STEP_MM}
    if step < VALIDATED_STEPS_MM[0]:
        return Check("slice_step", "flagged", value,
                     f"slices {step:.1f} mm apart: the patient rule (a lesion on k consecutive slices) was validated on "
                     f"series of {VALIDATED_MIN_STEP_MM:.0f}–{VALIDATED_STEP_MM:.0f} mm, where k slices span "
                     f"{VALIDATED_MIN_STEP_MM / step:.1f}× the length they span here; give a "
                     f"{VALIDATED_MIN_STEP_MM:.0f}–{VALIDATED_STEP_MM:.0f} mm reconstruction if the study has one")
    if step > VALIDATED_STEP_MM:
        return Check("slice_step", "flagged", value,
                     f"slices {step:.1f} mm apart: the patient rule was validated on series of "
                     f"{VALIDATED_STEP_MM:.0f} mm or thinner (on thick slices a lung mass can pass for pneumonia)")
    return Check("slice_step", "ok", value)


def lung_coverage_check(image: MedicalImage, fractions: np.ndarray | None = None) -> Check:
    """Flags a HU series whose first or last slice still shows lungs (lung share ≥ ``LUNG_SLICE_HU``): the lungs go
    on beyond it, so the series covers only part of them and a negative call cannot speak for the rest. The four
    shared whole chest CTs end at 0.01–0.06 on both sides; the bundled 10-slice excerpt at 0.13 and 0.23. Windowed
    slices (no HU) and series under ``FEW_SLICES`` slices cannot be judged and pass with the value unknown.
    ``fractions``: :func:`lung_fractions` of ``image`` when already measured (its samples include both ends)."""
    pixels = image.pixels if image.is_volume else image.pixels[None]
    if not image.is_hu or len(pixels) < FEW_SLICES:
        return Check("lung_coverage", "ok", {"end_lung_fractions": None})
    if fractions is None:
        fractions = lung_fractions(image, max_slices=2)  # the first and the last slice
    ends = [fractions[0], fractions[-1]]
    value = {"end_lung_fractions": [round(float(f), 3) for f in ends], "lungs_end_below": LUNG_SLICE_HU}
    open_ends = [name for name, f in zip(("first", "last"), ends) if f >= LUNG_SLICE_HU]
    if open_ends:
        return Check("lung_coverage", "flagged", value,
                     f"the lungs go on beyond the {' and '.join(open_ends)} slice: the series covers only part of the "
                     "lungs (the patient rule was validated on whole chest CTs)")
    return Check("lung_coverage", "ok", value)


def pixel_value_check(image: MedicalImage, window: str = "lung") -> Check:
    """Refuses slices that are neither Hounsfield units nor display grey 0..255: a CT DICOM without RescaleSlope /
    RescaleIntercept (stored values, e.g. 0..2500) or a 16-bit raster. Scaled by their maximum they would reach the
    model in an unknown, far too wide window instead of the ``window`` (lung, abdomen) window it works in."""
    if image.is_hu:
        return Check("pixel_values", "ok", {"is_hu": True})
    top = float(np.max(image.pixels)) if image.pixels.size else 0.0
    value = {"is_hu": False, "max_value": round(top, 1)}
    if top > 255.5:
        return Check("pixel_values", "refused", value,
                     f"pixel values up to {top:.0f} are neither Hounsfield units (no RescaleSlope/RescaleIntercept) "
                     f"nor 8-bit display grey: the {window} window cannot be applied; export the series with its "
                     f"rescale tags, or as {window}-window slices")
    return Check("pixel_values", "ok", value)


SOFT_WINDOW_DARK = 0.25  # median share of the lung field at black (grey ≤ 3) above which 8-bit slices are refused


def lung_black_share(grey: np.ndarray) -> float | None:
    """Share of an 8-bit slice's lung field (as the model finds it, at the gate's working size) that is black (grey
    ≤ 3); ``None`` when the slice shows no lung field (< 1 % of the slice)."""
    from lesiondx.ct_covid.config import read_config
    from lesiondx.ct_covid.lung import lung_field

    from .features import shrink

    g = shrink(np.asarray(grey, np.float32))
    threshold = read_config(None).lung_threshold_grey
    field = lung_field(g, threshold, remove_border_air=True)
    if field.mean() < LUNG_SLICE_GREY:
        field = lung_field(g, threshold, remove_border_air=False)  # slices cropped to the chest
    return None if field.mean() < 0.01 else float((g[field] <= 3).mean())


def window_check(image: MedicalImage, max_slices: int = 15) -> Check:
    """Refuses 8-bit slices rendered in a soft-tissue window, whose lungs are black: a mediastinal window (W350 L50)
    starts at −125 HU, so ground glass (about −700 to −300 HU) is as black as air and cannot be seen. Measured with
    this function (2026-12-06, 15 slices a series): the 98 MedSeg lung-window slices 0–0.064 (median 0); the four
    shared chest CTs rendered 8-bit in the model's or the 'lung' window 0 on every slice, in the mediastinum window
    series medians 0.55–0.76 (slices ≥ 0.45), abdomen window 0.45–0.75 (slices ≥ 0.31). HU series are windowed by
    the model itself and pass."""
    if image.is_hu:
        return Check("window", "ok", {"lung_black_share": None})
    pixels = image.pixels if image.is_volume else image.pixels[None]
    idx = spread_indices(len(pixels), max_slices)
    shares = [v for v in (lung_black_share(pixels[i]) for i in idx) if v is not None]
    if not shares:
        return Check("window", "ok", {"lung_black_share": None})
    share = float(np.median(shares))
    value = {"lung_black_share": round(share, 3), "refused_above": SOFT_WINDOW_DARK}
    if share > SOFT_WINDOW_DARK:
        return Check("window", "refused", value,
                     f"{share:.0%} of the lung field is black: the slices are in a soft-tissue window, where ground-glass "
                     "opacities are as black as air; give lung-window slices or the DICOM series")
    return Check("window", "ok", value)


MIN_AXIAL_COS = 0.5  # slice normal more than 60° from the body axis: a coronal or sagittal plane


def plane_check(image: MedicalImage) -> Check:
    """Refuses coronal and sagittal slices (ImageOrientationPatient; a reformat given instead of the axial series):
    the segmenter was trained on axial slices, and the patient rule's consecutive slices, its image quadrants and the
    lung zones of the locations are axial. Tilts up to 60° are left to the geometry check (flagged beyond 30°);
    slices without orientation (PNG/JPG) pass."""
    if image.orientation is None or len(image.orientation) != 6:
        return Check("plane", "ok", {"axial_cos": None})
    normal = normal_cosines(image.orientation)
    cos = float(normal[2])
    value = {"axial_cos": round(cos, 3)}
    if cos < MIN_AXIAL_COS:
        plane = "sagittal" if normal[0] >= normal[1] else "coronal"
        return Check("plane", "refused", value, f"{plane} slices (a reformat): this model reads axial chest CT slices; "
                                                "give the axial series")
    return Check("plane", "ok", value)


def gate(image: MedicalImage) -> GateVerdict:
    """The ct-covid verdict for a series (or slice) read by :mod:`lesiondx.io`; the slices' lung shares are measured
    once, for the body-region and the lung-coverage checks."""
    measured: list[np.ndarray] = []

    def fractions(of: MedicalImage) -> np.ndarray:
        if not measured:
            measured.append(lung_fractions(of))
        return measured[0]

    return ct_gate(TASK, image, lambda im: body_region_check(im, fractions(im)), min_slices=FEW_SLICES,
                   task_checks=(plane_check, pixel_value_check, window_check, slice_step_check, lambda im: lung_coverage_check(im, fractions(im))))
