"""Lesions of one patient across phases: phases aligned by translation onto a reference series, the
boxes of every phase merged into 3D lesions, each lesion outlined, measured per phase and characterised
(:mod:`.characterise`). Result JSON under ``"findings"`` (see :func:`findings`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lesiondx.data import Box

from .candidates import Detection
from .characterise import MARGIN_HU, evidence, features, measure_phase
from .locations import liver_frame
from .phases import shifted, translation
from .sizes import lesion_size_mm

JOIN_MM = 4.0  # boxes closer than this are parts of one lesion
MIN_COVERED = 0.5  # a phase is measured on a lesion only when its series covers at least this share of it
GROW = 0.25  # a lesion's outline may reach this fraction of its box size beyond the box (rims outside a dark core)


@dataclass(frozen=True)
class Series:
    """One analysed phase: HU volume, liver mask, inside-liver detections and its phase name."""

    study_id: str
    phase: str | None
    hu: np.ndarray
    liver: np.ndarray
    spacing_mm: float
    found: tuple[Detection, ...]
    slice_mm: float | None = None  # slice step (DICOM); None: unknown, no craniocaudal size
    spacing_known: bool = True  # False: ``spacing_mm`` is a stand-in, no size in mm is given
    spacing_estimated: bool = False  # True: ``spacing_mm`` estimated from the body width
    orientation: tuple[float, ...] | None = None  # DICOM ImageOrientationPatient, for the lesion's lobe
    gaps: tuple[int, ...] = ()  # i: slices missing between slice i and i + 1 (a position gap)


def seeds(series: Sequence[Series], shifts: Sequence[tuple[int, int, int]], shape: tuple[int, int, int],
          spacing_mm: float) -> np.ndarray:
    """3D label map in the reference frame: every detection box of every phase, moved by its phase's shift,
    filled in; boxes within ``JOIN_MM`` of each other (also on adjacent slices) form one lesion (the bright
    nodules and the dark core of a haemangioma are found as separate boxes)."""
    boxes = np.zeros(shape, bool)
    for s, (dz, dy, dx) in zip(series, shifts):
        for d in s.found:
            z = d.slice + dz
            if 0 <= z < shape[0]:
                b = d.box
                boxes[z, max(0, b.y1 + dy):max(0, b.y2 + dy), max(0, b.x1 + dx):max(0, b.x2 + dx)] = True
    grown = ndimage.binary_dilation(boxes, structure=np.ones((1, 3, 3), bool),
                                    iterations=max(1, int(round(JOIN_MM / spacing_mm / 2))))
    labels, _ = ndimage.label(grown, structure=ndimage.generate_binary_structure(3, 1))
    return np.where(boxes, labels, 0)


def outline(seed: np.ndarray, volumes: Sequence[np.ndarray], liver: np.ndarray) -> np.ndarray:
    """The lesion's voxels: per slice, where any phase differs from that slice's liver median by ≥
    ``MARGIN_HU`` (1-px Gaussian smoothing) inside the seed box grown by ``GROW``, the parts touching the box,
    holes filled; the ellipse inscribed in the box where nothing differs."""
    out = np.zeros(seed.shape, bool)
    for z in np.nonzero(seed.any(axis=(1, 2)))[0]:
        rows, cols = np.nonzero(seed[z])
        r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        gr, gc = max(2, int(GROW * (r1 - r0))), max(2, int(GROW * (c1 - c0)))
        window = np.zeros(seed.shape[1:], bool)
        window[max(0, r0 - gr):r1 + gr, max(0, c0 - gc):c1 + gc] = True
        background = liver[z] & ~window
        rr, cc = np.nonzero(window)
        crop = (slice(max(0, rr.min() - 3), rr.max() + 4), slice(max(0, cc.min() - 3), cc.max() + 4))
        abnormal = np.zeros_like(window)
        for v in volumes:
            ref = v[z][background] if background.sum() > 50 else v[liver] if liver.any() else v[z]
            level = float(np.median(ref))
            abnormal[crop] |= np.abs(ndimage.gaussian_filter(v[z][crop].astype(np.float32), 1.0) - level) >= MARGIN_HU
        abnormal &= window
        labels, _ = ndimage.label(abnormal)
        keep = np.setdiff1d(np.unique(labels[seed[z]]), [0])
        region = ndimage.binary_fill_holes(np.isin(labels, keep)) if keep.size else np.zeros_like(window)
        if region.sum() < 4:
            yy, xx = np.mgrid[: seed.shape[1], : seed.shape[2]]
            cy, cx, ry, rx = (r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2, max(1, (r1 - r0) / 2), max(1, (c1 - c0) / 2)
            region = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        out[z] = region
    return out


def align(series: Sequence[Series]) -> tuple[list[tuple[int, int, int]], list[np.ndarray]]:
    """Each series' (slice, row, col) shift onto the first and its HU volume moved into that frame."""
    ref = series[0]
    shifts = [(0, 0, 0)] + [translation(ref.hu, s.hu) for s in series[1:]]
    volumes = [ref.hu] + [shifted(s.hu, sh, ref.hu.shape, float(np.median(s.hu)))
                          for s, sh in zip(series[1:], shifts[1:])]
    return shifts, volumes


def findings(series: Sequence[Series],
             aligned: tuple[list[tuple[int, int, int]], list[np.ndarray]] | None = None) -> list[dict]:
    """One characterised lesion per 3D group of inside-liver boxes over all phases (reference frame = the
    first series; ``aligned``: :func:`align`'s result when already computed): ``{"id", "slices", "box",
    "size_mm": {"long_axis", "craniocaudal", "basis"}, "location", "phases": {phase: measured HU},
    "features": [...], "evidence"}``.
    Series without a known phase are measured but judge no phase-dependent feature."""
    if not series:
        return []
    ref = series[0]
    shape = ref.hu.shape
    shifts, volumes = aligned if aligned is not None else align(series)
    labels = seeds(series, shifts, shape, ref.spacing_mm)
    frame = liver_frame(ref.liver, ref.orientation, ref.spacing_mm if ref.spacing_known else None)
    covers = [shifted(np.ones(s.hu.shape, bool), sh, shape, False) for s, sh in zip(series, shifts)]
    out = []
    for k in range(1, int(labels.max()) + 1):
        seed = labels == k
        lesion = outline(seed, volumes, ref.liver)
        ring_liver = ref.liver & ~(labels > 0)
        measures, uncovered = {}, []
        for s, v, cover in zip(series, volumes, covers):
            name = s.phase or f"unknown ({s.study_id})"
            name = f"{name} ({s.study_id})" if name in measures else name  # a repeated phase: measured, not judged
            seen = lesion & cover
            if seen.sum() < MIN_COVERED * lesion.sum():  # the series does not reach this lesion: nothing to measure
                uncovered.append(s.study_id)
                continue
            measures[name] = measure_phase(name, v, seen, ring_liver & cover, ref.spacing_mm)
        feats = features(measures)
        zs = np.nonzero(lesion.any(axis=(1, 2)))[0]
        rows, cols = np.nonzero(lesion.any(axis=0))
        out.append({
            "id": k, "study": ref.study_id, "slices": [int(zs.min()), int(zs.max())],
            "box": [int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1],
            "size_mm": lesion_size_mm(_boxes_of(k, labels, series, shifts), ref.spacing_mm if ref.spacing_known
                                      else None, ref.slice_mm, ref.spacing_estimated, shape[0], ref.gaps),
            "location": frame.point_location(*ndimage.center_of_mass(lesion.any(axis=0))),
            "alignment": {s.study_id: list(sh) for s, sh in zip(series, shifts)},
            "phases": {p: {"lesion_hu": _r(m.lesion_hu), "core_hu": _r(m.core_hu), "rim_hu": _r(m.rim_hu),
                           "liver_hu": _r(m.liver_hu)} for p, m in measures.items()},
            **({"not_covered_by": uncovered, "not_covered_note": "these series do not reach at least half of this "
                "lesion after alignment: not measured, their phase's features not judged"} if uncovered else {}),
            "features": [f.as_dict() for f in feats],
            "evidence": evidence(feats).as_dict(),
        })
    return out


def _boxes_of(k: int, labels: np.ndarray, series: Sequence[Series], shifts) -> list[tuple[int, Box]]:
    """The ``(slice, box)`` detections of every phase whose box centre falls in lesion ``k`` (reference frame)."""
    out = []
    for s, (dz, dy, dx) in zip(series, shifts):
        for d in s.found:
            z, b = d.slice + dz, d.box
            r, c = (b.y1 + b.y2) // 2 + dy, (b.x1 + b.x2) // 2 + dx
            if 0 <= z < labels.shape[0] and 0 <= r < labels.shape[1] and 0 <= c < labels.shape[2] and labels[z, r, c] == k:
                out.append((z, b))
    return out


def _r(x: float) -> float | None:
    return round(float(x), 1) if np.isfinite(x) else None
