"""SYNTHETIC lesions inserted into a real CT study, in memory (a lesion-insertion study: the detector on real anatomy
with lesions of known size and contrast; BENCHMARKS.md ct-liver §5). A lesion adds ``delta_hu`` to the patient's own
voxels over a sphere, so its noise and texture stay the patient's. Nothing is written to disk."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from scipy import ndimage

from lesiondx.io import apply_window

from .study import WINDOW, Study

MIN_GAP_TO_LESION_MM = 10.0  # an inserted lesion's edge stays this far from every reference lesion


def sphere_weight(shape: tuple[int, int, int], centre: tuple[float, float, float], radius_mm: float,
                  voxel_mm: tuple[float, float, float]) -> np.ndarray:
    """Weight in [0, 1] per voxel: 1 inside a sphere of ``radius_mm`` (voxel sizes ``voxel_mm`` = z, y, x in mm),
    falling linearly to 0 over one in-plane voxel."""
    zz, yy, xx = np.ogrid[: shape[0], : shape[1], : shape[2]]
    dist = np.sqrt(((zz - centre[0]) * voxel_mm[0]) ** 2 + ((yy - centre[1]) * voxel_mm[1]) ** 2
                   + ((xx - centre[2]) * voxel_mm[2]) ** 2)
    return np.clip((radius_mm + voxel_mm[1] - dist) / voxel_mm[1], 0.0, 1.0).astype(np.float32)


def _voxel_mm(study: Study) -> tuple[float, float, float]:
    if study.spacing_mm is None:
        raise ValueError(f"{study.study_id}: lesion insertion needs the pixel spacing")
    return float(study.slice_mm or 1.0), float(study.spacing_mm), float(study.spacing_mm)


def insertion_centres(study: Study, radius_mm: float, n: int, rng: np.random.Generator) -> list[tuple[int, int, int]]:
    """Up to ``n`` voxel centres (z, y, x) inside the study's reference liver mask, ≥ radius + 5 mm from its edge,
    ≥ radius + ``MIN_GAP_TO_LESION_MM`` from its reference lesions and 4 radii from each other (random order)."""
    if study.liver is None:
        raise ValueError(f"{study.study_id}: lesion insertion needs the reference liver mask")
    voxel = _voxel_mm(study)
    inner = ndimage.binary_erosion(study.liver, iterations=1)
    allowed = ndimage.distance_transform_edt(inner, sampling=voxel) > radius_mm + 5.0
    if study.lesion is not None and study.lesion.any():
        allowed &= ndimage.distance_transform_edt(study.lesion == 0, sampling=voxel) > radius_mm + MIN_GAP_TO_LESION_MM
    candidates = np.argwhere(allowed)
    chosen: list[tuple[int, int, int]] = []
    for index in rng.permutation(len(candidates)):
        c = candidates[index]
        if all(np.sqrt(sum(((c[a] - o[a]) * voxel[a]) ** 2 for a in range(3))) > 4 * radius_mm for o in chosen):
            chosen.append((int(c[0]), int(c[1]), int(c[2])))
        if len(chosen) == n:
            break
    return chosen


def with_inserted_lesions(study: Study, centres: list[tuple[int, int, int]], radius_mm: float, delta_hu: float,
                          phase: str | None) -> Study:
    """The study with SYNTHETIC spheres of ``radius_mm`` added (``delta_hu`` > 0 brighter than the patient's tissue,
    < 0 darker), declared ``phase``; ``lesion`` becomes their label map (value k = inserted lesion k)."""
    hu = study.hu.copy()
    labels = np.zeros(hu.shape, np.int32)
    for k, centre in enumerate(centres, start=1):
        weight = sphere_weight(hu.shape, centre, radius_mm, _voxel_mm(study))
        hu += delta_hu * weight
        labels[weight >= 0.5] = k
    return replace(study, hu=hu, grey=apply_window(hu, WINDOW), lesion=labels, phase=phase)
