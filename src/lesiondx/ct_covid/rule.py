"""Patient rule: positive when ≥ k consecutive slices show a lesion in the same image quadrant.

A lesion is a connected part of ``probability ≥ threshold`` on one slice with at least a minimum
cross-section (pneumonia opacities are centimetric; vessel cross-sections and partial-volume blips
near the heart, hila and diaphragm are smaller); it counts in the quadrant of its centroid. The
continuous patient score is the highest probability threshold at which the rule still holds, so
``decision == 1`` exactly when ``score ≥ threshold``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from lesiondx.data import QUADRANTS

_IN_SLICE = np.zeros((3, 3, 3), dtype=bool)
_IN_SLICE[1] = True  # 8-connected within a slice, never across slices

Run = tuple[str | None, int, tuple[int, int] | None]
Parts = tuple[np.ndarray, int, np.ndarray]  # lesion_parts(): labels, number of parts, which parts count


@dataclass(frozen=True)
class PatientDecision:
    """The patient-level call.

    Attributes:
        decision: 1 when some quadrant has a lesion on ≥ ``k`` consecutive slices.
        score: continuous patient score in [0, 1]: the highest probability threshold at which the
            rule still holds (0.0 when it holds at no threshold ≥ 0.01); ``score ≥ threshold`` exactly when ``decision == 1``.
        k: the number of consecutive slices required (shortened to the series length if shorter).
        quadrant: image quadrant of the longest run (``None`` without any lesion); image-coordinate
            metadata (``image_quadrant`` in :meth:`to_dict`): patient-term locations come from
            :mod:`lesiondx.ct_covid.locations`.
        run: ``(first, last)`` slice positions of that run, or ``None``.
        run_length: its length in slices.
    """

    decision: int
    score: float
    k: int
    quadrant: str | None
    run: tuple[int, int] | None
    run_length: int

    def to_dict(self) -> dict:
        return {"decision": self.decision, "score": self.score, "k": self.k, "image_quadrant": self.quadrant,
                "run": list(self.run) if self.run else None, "run_length": self.run_length}


@dataclass(frozen=True)
class RuleSettings:
    """How lesions are counted: ``k`` consecutive slices, ``threshold`` on the lesion probability,
    ``min_area_px`` smallest lesion cross-section (pixels of the probability map), and the quadrant
    mid-lines ``(row, col)`` in probability-map pixels."""

    k: int = 3
    threshold: float = 0.5
    min_area_px: float = 20.0
    midlines: tuple[float, float] | None = None  # default: the map's centre
    # optional candidate filter: (parts, n_parts) -> bool (n_parts + 1,), the parts that may count as lesions
    keep: Callable[[np.ndarray, int], np.ndarray] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be ≥ 1, not {self.k}")


def _positions(n: int, positions: Sequence[int] | None) -> np.ndarray:
    pos = np.arange(n) if positions is None else np.asarray(positions, dtype=int)
    if pos.shape != (n,):
        raise ValueError(f"{len(pos)} slice positions for {n} slices")
    if n > 1 and np.any(np.diff(pos) <= 0):
        raise ValueError("slice positions must be strictly increasing (order slices before the rule)")
    return pos


def longest_run(quadrant_sets: Sequence[Collection[str]], positions: Sequence[int] | None = None) -> Run:
    """``(quadrant, length, (first, last))`` of the longest run of consecutive slices with a lesion
    in the same quadrant. A missing slice position (gap) or a slice without that quadrant resets."""
    pos = _positions(len(quadrant_sets), positions)
    best: Run = (None, 0, None)
    for quad in QUADRANTS:
        length, start = 0, 0
        for i, quads in enumerate(quadrant_sets):
            if quad not in quads:
                length = 0
                continue
            if length and pos[i] == pos[i - 1] + 1:
                length += 1
            else:
                length, start = 1, i
            if length > best[1]:
                best = (quad, length, (int(pos[start]), int(pos[i])))
    return best


def lesion_parts(lesion: np.ndarray, settings: RuleSettings) -> Parts:
    """In-slice connected parts of a boolean ``(slices, H, W)`` mask: ``(labels, n_parts, counted)`` where
    ``counted[i]`` is True for part ``i`` with at least ``min_area_px`` pixels that the filter (if any) keeps."""
    lesion = np.asarray(lesion, dtype=bool)
    parts, n_parts = ndimage.label(lesion, structure=_IN_SLICE)
    areas = np.bincount(parts[lesion], minlength=n_parts + 1).astype(float)  # over the parts' voxels (0 never counts)
    counted = areas >= settings.min_area_px
    counted[0] = False
    if settings.keep is not None and counted.any():
        counted &= np.asarray(settings.keep(parts, n_parts), dtype=bool)
    return parts, n_parts, counted


def kept_lesions(probs: np.ndarray, settings: RuleSettings, threshold: float | None = None) -> np.ndarray:
    """Boolean ``(slices, H, W)`` mask of the lesions the rule counts (size floor and filter applied)."""
    lesion = np.asarray(probs) >= (settings.threshold if threshold is None else threshold)
    parts, _, counted = lesion_parts(lesion, settings)
    return counted[parts]


def part_centroids(parts: np.ndarray, n_parts: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice index and centroid row / column (pixels) of the in-slice parts ``ids`` of the label volume ``parts``
    ``(slices, H, W)``; sums run over those parts' voxels in order."""
    inside = np.flatnonzero(parts)
    labels = parts.ravel()[inside]
    areas = np.bincount(labels, minlength=n_parts + 1).astype(float)
    wanted = np.zeros(n_parts + 1, dtype=bool)
    wanted[ids] = True
    chosen = wanted[labels]
    voxels, label = inside[chosen], labels[chosen]
    slice_of, row, col = np.unravel_index(voxels, parts.shape)
    first_slice = np.zeros(n_parts + 1, dtype=int)
    first_slice[label] = slice_of  # every voxel of a part lies on the same slice
    rows = np.bincount(label, weights=row, minlength=n_parts + 1)[ids] / areas[ids]
    cols = np.bincount(label, weights=col, minlength=n_parts + 1)[ids] / areas[ids]
    return first_slice[ids], rows, cols


def quadrant_names(rows: np.ndarray, cols: np.ndarray, midlines: tuple[float, float] | None,
                   shape: tuple[int, int]) -> list[str]:
    """``upper-left`` … ``lower-right`` of centroids (``rows``, ``cols``) against ``midlines`` (row, col;
    default: the centre of a ``shape`` map)."""
    mid_row, mid_col = midlines or (shape[0] / 2, shape[1] / 2)
    return [f"{'lower' if r >= mid_row else 'upper'}-{'right' if c >= mid_col else 'left'}" for r, c in zip(rows, cols)]


def lesion_quadrant_sets(lesion: np.ndarray, settings: RuleSettings, parts: Parts | None = None) -> list[set[str]]:
    """The quadrants holding a lesion on each slice of a boolean ``(slices, H, W)`` mask: each
    in-slice connected part of at least ``min_area_px`` pixels (kept by ``settings.keep``, if set) counts in
    the quadrant of its centroid. ``parts``: :func:`lesion_parts` of this mask, when already known."""
    lesion = np.asarray(lesion, dtype=bool)
    sets: list[set[str]] = [set() for _ in range(lesion.shape[0])]
    parts, n_parts, big = lesion_parts(lesion, settings) if parts is None else parts
    if not big.any():
        return sets
    slices, rows, cols = part_centroids(parts, n_parts, np.flatnonzero(big))
    for z, name in zip(slices, quadrant_names(rows, cols, settings.midlines, lesion.shape[1:])):
        sets[z].add(name)
    return sets


def best_run(probs: np.ndarray, settings: RuleSettings, positions: Sequence[int] | None = None,
             threshold: float | None = None, parts: Parts | None = None) -> Run:
    """The longest same-quadrant run of lesions of ``probs ≥ threshold`` (default: the settings');
    ``parts``: their :func:`lesion_parts`, when already known."""
    lesion = np.asarray(probs) >= (settings.threshold if threshold is None else threshold)
    return longest_run(lesion_quadrant_sets(lesion, settings, parts), positions)


def patient_rule(probs: np.ndarray, settings: RuleSettings, positions: Sequence[int] | None = None,
                 *, score_steps: int = 12, parts: Parts | None = None) -> PatientDecision:
    """Apply the rule to a patient's lesion-probability maps ``(slices, H, W)``, ordered.

    ``positions`` are slice indices (consecutive means +1). The score is found by bisection over the
    threshold (``score_steps`` halvings of the interval on the decision's side of the threshold).
    ``parts``: :func:`lesion_parts` of ``probs ≥ settings.threshold``, when the caller has them already.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 3:
        raise ValueError(f"probs must be (slices, H, W), got shape {probs.shape}")
    n = probs.shape[0]
    _positions(n, positions)
    k_eff = max(1, min(settings.k, n))
    quad, length, run = best_run(probs, settings, positions, parts=parts) if n else (None, 0, None)
    decision = int(n > 0 and length >= k_eff)

    def holds(threshold: float) -> bool:
        return best_run(probs, settings, positions, threshold)[1] >= k_eff

    # bisect on the side of the threshold the decision fixed, so decision == (score >= threshold)
    low, high = (settings.threshold, 1.0) if decision else (0.01, settings.threshold)
    if n == 0 or not (decision or holds(low)):
        score = 0.0
    else:
        for _ in range(score_steps):
            middle = (low + high) / 2
            low, high = (middle, high) if holds(middle) else (low, middle)
        score = low
    return PatientDecision(decision, float(score), k_eff, quad, run, length)
