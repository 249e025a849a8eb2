"""Contrast phase of a CT series, from its DICOM tags and from how bright its aorta and portal vein are,
and translation alignment of the phases of one study.

Nothing here looks at file or folder names: de-identified series keep only a phase keyword in
SeriesDescription, and many keep nothing, so the enhancement of the vessels is the fallback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:
    from .study import Study

PHASES = ("non-contrast", "arterial", "portal-venous", "delayed")
BONE_HU = 400.0  # cortical bone; the vertebral body is the filled-in hull of it
AORTA_RADIUS_MM = 6.0  # disc the aorta's mean is taken over (adult abdominal aorta ≈ 20 mm across)
ARTERIAL_GAP_HU = 80.0  # aorta this far above the (intrahepatic) portal veins: arterial phase
VEIN_RADIUS_MM = 3.0  # disc for intrahepatic vessels (portal vein branches ≥ 6 mm across at the hilum)
# Below this largest liver cross-section the series does not reach the liver hilum (or what was taken for liver is
# not liver), so vessel HU say nothing about the phase. Measured with `largest_section_cm2` on the HU-rule mask
# (2026-12-06): whole livers 177 / 189 cm² (IRCADb p01 / p07), 141–248 cm² on three chest CTs reaching the upper
# abdomen; p01's top 12 slices (dome) 78 cm² and its 27 slices below the liver 24 cm² (both were called arterial).
MIN_LIVER_SECTION_CM2 = 100.0


@dataclass(frozen=True)
class VesselLevels:
    """Mean HU of the aorta and of the brightest intrahepatic (portal / hepatic) veins; ``None`` = not found."""

    aorta_hu: float | None
    portal_vein_hu: float | None


@dataclass(frozen=True)
class PhaseCall:
    """The phase of one series and why (``source``: ``given``, ``dicom-tags``, ``enhancement`` or ``unknown``)."""

    phase: str | None
    source: str
    reason: str
    warning: str | None = None  # a named phase (user, tags) that the vessels' enhancement contradicts


def phase_from_enhancement(aorta_hu: float | None, portal_vein_hu: float | None) -> PhaseCall:
    """Phase from vessel enhancement (HU). Rules, first match wins:

    * aorta < 60 HU → ``non-contrast`` (unenhanced blood is 30–50 HU);
    * aorta > 200 HU and aorta − portal vein > 80 HU → ``arterial`` (the bolus is in the arteries, the
      portal system not yet filled; 80 rather than 50 because the intrahepatic measurement reads portal
      veins 20–40 HU low: IRCADb p07, a portal-venous study, measures aorta 235 / veins 166 HU — set after
      looking at it, not blind);
    * aorta ≥ 60 HU and portal vein ≥ aorta − 80 HU → ``portal-venous`` (both moderate, veins ≈ aorta);
      if both are < 130 HU (contrast leaving) → ``delayed``;
    * otherwise (aorta 60–200 HU well above the veins) → ``arterial`` (early / weak bolus).
    ``None`` when the aorta could not be measured.
    """
    if aorta_hu is None:
        return PhaseCall(None, "unknown", "aorta not found")
    pv = portal_vein_hu if portal_vein_hu is not None else float("nan")
    told = f"aorta {aorta_hu:.0f} HU, portal vein {pv:.0f} HU"
    if aorta_hu < 60:
        return PhaseCall("non-contrast", "enhancement", f"{told}: aorta < 60 HU")
    if not np.isfinite(pv):
        return PhaseCall(None, "unknown", f"{told}: portal vein not found")
    if aorta_hu > 200 and aorta_hu - pv > ARTERIAL_GAP_HU:
        return PhaseCall("arterial", "enhancement",
                         f"{told}: aorta > 200 HU and > {ARTERIAL_GAP_HU:.0f} HU above the portal vein")
    if pv >= aorta_hu - ARTERIAL_GAP_HU:
        if aorta_hu < 130 and pv < 130:
            return PhaseCall("delayed", "enhancement", f"{told}: both enhanced, < 130 HU")
        return PhaseCall("portal-venous", "enhancement", f"{told}: portal vein within {ARTERIAL_GAP_HU:.0f} HU of the aorta")
    return PhaseCall("arterial", "enhancement", f"{told}: aorta well above the portal vein")


@dataclass(frozen=True)
class SeriesTags:
    """What a series' first DICOM header says about timing and whose series it is (empty strings when absent
    or not DICOM)."""

    contrast_agent: str = ""
    acquisition_time: str = ""
    patient_id: str = ""
    study_uid: str = ""
    series_uid: str = ""


def series_tags(path: str | Path) -> SeriesTags:
    """ContrastBolusAgent, AcquisitionTime, PatientID, StudyInstanceUID and SeriesInstanceUID of the first
    DICOM file of a series folder (or of one file)."""
    from lesiondx.io import ImageReadError, is_dicom_file, read_dataset

    path = Path(path)
    if not path.exists():
        return SeriesTags()  # reading the study says why
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if is_dicom_file(f):
            try:
                ds = read_dataset(f, pixels=False)
            except ImageReadError:
                continue
            return SeriesTags(*(str(ds.get(k, "") or "").strip() for k in (
                "ContrastBolusAgent", "AcquisitionTime", "PatientID", "StudyInstanceUID", "SeriesInstanceUID")))
    return SeriesTags()


def phases_by_time(tags: Sequence[SeriesTags]) -> list[str | None]:
    """Exactly two series, both with a ContrastBolusAgent and an AcquisitionTime (``HHMMSS``): the earlier is
    ``arterial``, the later ``portal-venous``; otherwise ``None`` for each (no call)."""
    if len(tags) != 2 or not all(t.contrast_agent and t.acquisition_time for t in tags) \
            or tags[0].acquisition_time == tags[1].acquisition_time:
        return [None] * len(tags)
    first = 0 if tags[0].acquisition_time < tags[1].acquisition_time else 1
    return ["arterial" if i == first else "portal-venous" for i in range(2)]


def _disc_mean(hu: np.ndarray, radius_px: float) -> np.ndarray:
    r = max(1, int(round(radius_px)))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    disc = ((xx * xx + yy * yy) <= r * r).astype(np.float32)
    return ndimage.convolve(hu, disc / disc.sum(), mode="nearest")


def vessel_levels(hu: np.ndarray, liver: np.ndarray, spacing_mm: float | None) -> VesselLevels:
    """Aorta and portal-vein HU of a volume ``(S, H, W)`` with its liver mask, on the slices with the
    most liver (supine, anterior = top of the image).

    Aorta: the brightest 6 mm disc mean in the central band (middle 30 % of the body width) between the
    body centre and the vertebral body, with bone (> 400 HU, holes filled, + 3 mm) excluded. Portal vein:
    the 99th percentile of 3 mm disc means inside the liver mask (its brightest veins). Approximate by
    design: the values only have to separate the phases by tens of HU.
    """
    hu = np.asarray(hu, np.float32)
    liver = np.asarray(liver, bool)
    if not liver.any():
        return VesselLevels(None, None)
    mm = spacing_mm or 0.75
    area = liver.sum(axis=(1, 2))
    picks = np.argsort(area)[::-1][: max(1, min(5, int((area > 0).sum())))]
    aortas, veins = [], []
    for z in picks:
        sl = hu[z]
        body = ndimage.binary_fill_holes(sl > -300)
        if not body.any():
            continue
        rows, cols = np.nonzero(body)
        cy, cx = rows.mean(), cols.mean()
        width = cols.max() - cols.min() + 1
        bone = ndimage.binary_dilation(ndimage.binary_fill_holes(sl > BONE_HU), iterations=max(1, int(3 / mm)))
        band = np.zeros_like(body)
        band[int(cy - 0.1 * width):int(cy + 0.25 * width), int(cx - 0.15 * width):int(cx + 0.15 * width)] = True
        region = band & body & ~bone & ~liver[z]
        if region.sum() > 10:
            aortas.append(float(_disc_mean(np.where(bone, 0, sl), AORTA_RADIUS_MM / mm)[region].max()))
        inside = ndimage.binary_erosion(liver[z], iterations=2)
        if inside.sum() > 50:
            veins.append(float(np.percentile(_disc_mean(sl, VEIN_RADIUS_MM / mm)[inside], 99)))
    return VesselLevels(float(np.median(aortas)) if aortas else None, float(np.median(veins)) if veins else None)


def identify_phase(tag_phase: str | None, given: str | None, levels: VesselLevels, timed: str | None = None) -> PhaseCall:
    """``given`` (the user's) > DICOM tag keyword (SeriesDescription / ContrastBolusAgent) > AcquisitionTime
    order of two contrast series (``timed``, :func:`phases_by_time`) > enhancement."""
    if given:
        return PhaseCall(given, "given", "named by the user")
    if tag_phase:
        return PhaseCall(tag_phase, "dicom-tags", "SeriesDescription / ContrastBolusAgent keyword")
    if timed:
        return PhaseCall(timed, "dicom-tags", "AcquisitionTime order of two contrast series")
    return phase_from_enhancement(levels.aorta_hu, levels.portal_vein_hu)


def contradiction(call: PhaseCall, levels: VesselLevels) -> str | None:
    """Why the phase the user or the tags named looks wrong from the vessels (:func:`phase_from_enhancement`:
    contrast vs none, arterial vs later; portal-venous vs delayed is too soft a line to argue), else ``None``."""
    if call.source not in ("given", "dicom-tags") or call.phase is None:
        return None
    seen = phase_from_enhancement(levels.aorta_hu, levels.portal_vein_hu)
    if seen.phase is None or seen.phase == call.phase or {seen.phase, call.phase} <= {"portal-venous", "delayed"}:
        return None
    named = "named by the user" if call.source == "given" else "from the DICOM tags"
    return (f"phase {call.phase} ({named}) but the vessels look {seen.phase} ({seen.reason}); characterised as "
            f"{call.phase}: check the phase")


def translation(reference: np.ndarray, moving: np.ndarray, work_px: int = 128) -> tuple[int, int, int]:
    """Integer ``(dz, dy, dx)`` shift that maps ``moving`` onto ``reference`` (``reference[p] ≈ moving[p - shift]``):
    phase correlation of HU clipped to −100…300, in-plane block-averaged to about ``work_px`` pixels (so the
    in-plane shift is a multiple of that factor: ±1.5 mm at 0.75 mm pixels), both volumes zero-padded to
    twice a common shape so that nothing wraps round."""
    from skimage.registration import phase_cross_correlation

    f = max(1, int(round(max(reference.shape[1:]) / work_px)))

    def small(v: np.ndarray) -> np.ndarray:
        c = np.clip(np.asarray(v, np.float32), -100, 300) + 100
        return ndimage.uniform_filter(c, size=(1, f, f))[:, ::f, ::f] if f > 1 else c

    ref, mov = small(reference), small(moving)
    shape = tuple(2 * max(a, b) for a, b in zip(ref.shape, mov.shape))

    def pad(v: np.ndarray) -> np.ndarray:
        out = np.zeros(shape, np.float32)
        out[: v.shape[0], : v.shape[1], : v.shape[2]] = v
        return out

    shift, _, _ = phase_cross_correlation(pad(ref), pad(mov), normalization=None)
    return int(round(shift[0])), int(round(shift[1])) * f, int(round(shift[2])) * f


def shifted(volume: np.ndarray, shift: tuple[int, int, int], shape: tuple[int, int, int], fill: float) -> np.ndarray:
    """``volume`` moved by ``shift`` into an array of ``shape`` (``out[p] = volume[p - shift]``, ``fill`` outside)."""
    out = np.full(shape, fill, dtype=np.asarray(volume).dtype)
    src = [slice(max(0, -s), min(n, m - s)) for s, n, m in zip(shift, volume.shape, shape)]
    dst = [slice(a.start + s, a.stop + s) for a, s in zip(src, shift)]
    if all(a.stop > a.start for a in src):
        out[tuple(dst)] = volume[tuple(src)]
    return out


def section_areas_cm2(liver: np.ndarray, spacing_mm: float | None) -> np.ndarray:
    """Area (cm²) of the liver mask ``(S, H, W)`` on each axial slice (``spacing_mm`` in-plane; 0.75 mm when unknown)."""
    mask = np.asarray(liver, bool)
    return mask.reshape(len(mask), -1).sum(axis=1) * (spacing_mm or 0.75) ** 2 / 100.0


def largest_section_cm2(liver: np.ndarray, spacing_mm: float | None) -> float:
    """Area (cm²) of the liver mask's largest axial cross-section (0 for an empty mask)."""
    areas = section_areas_cm2(liver, spacing_mm)
    return float(areas.max()) if areas.size else 0.0


def series_phase(study: Study, given: str | None, timed: str | None, liver: np.ndarray) -> PhaseCall:
    """The series' phase: given > DICOM tags > acquisition-time order > aorta / portal-vein HU (exact HU only, and
    only when the liver's largest cross-section reaches ``MIN_LIVER_SECTION_CM2``: the series reaches the hilum)."""
    if given or study.phase or timed or study.hu_exact:
        section = largest_section_cm2(liver, study.spacing_mm)
        at_hilum = study.hu_exact and section >= MIN_LIVER_SECTION_CM2
        if study.hu_exact and not at_hilum and not (given or study.phase or timed):
            return PhaseCall(None, "unknown", f"the liver's largest cross-section is {section:.0f} cm² (under "
                                              f"{MIN_LIVER_SECTION_CM2:.0f} cm²: the series shows only part of the "
                                              "liver, e.g. its dome, or no liver): vessels not measured at liver "
                                              "level; name the phase (--phase) to have it characterised")
        levels = vessel_levels(study.hu, liver, study.spacing_mm) if at_hilum else VesselLevels(None, None)
        call = identify_phase(study.phase, given, levels, timed)
        return replace(call, warning=contradiction(call, levels))
    # 8-bit slices: the export window clips the aorta, and absolute HU rest on a window estimate
    return PhaseCall(None, "unknown", "8-bit slices: vessel HU are clipped by the export window; "
                                      "name the phase (phases=[...]) to have it characterised")
