"""Candidate-level false-positive filter of ct-covid: a small logistic model on each lesion candidate.

A candidate is an in-slice connected part of ``probability ≥ threshold`` (the rule's lesions). Its
features say what a radiologist would look at: how dense it is (pneumonia is ground-glass or consolidation
inside aerated lung; a tumour is a compact solid soft-tissue mass; vessels, hila and the heart border are
solid and medial), what surrounds it, how large it is and how sure the segmenter is. Densities are taken
from the model's 8-bit input and mapped back to HU through the lung window, so DICOM series and the
windowed MedSeg slices share one scale.

Shape, core and margin (added 2026-12-06, declared before any score with them was computed), all size-free:
``solidity`` (area / convex-hull area: a mass is compact and convex, pneumonia patches irregular), ``axis_ratio``
(minor / major axis: a mass is roughly round, bands and vessels elongated), ``hu_p90`` (a mass has a soft-tissue
core; ground glass stays below −300 HU) and ``edge_step`` (HU of the candidate's outer 2-px band minus its ring: a
mass has a sharp margin, ground glass fades into the lung). A filter file names the subset of :data:`FEATURES` it
uses, so a filter fitted on the first nine keeps loading and scoring as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

BASE_FEATURES = ("log_area_px", "mean_hu", "std_hu", "solid_frac", "ggo_frac", "mean_prob", "ring_hu",
                 "ring_solid_frac", "medial")
SHAPE_FEATURES = ("solidity", "axis_ratio", "hu_p90", "edge_step")
FEATURES = BASE_FEATURES + SHAPE_FEATURES  # every feature part_features can compute; a filter uses a subset
SOLID_HU, GGO_LOW_HU = -300.0, -800.0  # solid soft tissue above; ground glass between
FILTER_FILE = "candidate_filter.json"


def check_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple when it is a non-empty list of distinct :data:`FEATURES`; otherwise ValueError."""
    names = tuple(names)
    unknown = [n for n in names if n not in FEATURES]
    if not names or unknown or len(set(names)) != len(names):
        raise ValueError(f"candidate features {list(names)}: need distinct names out of {list(FEATURES)}"
                         + (f" (unknown: {unknown})" if unknown else ""))
    return names


def select(features: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The columns ``names`` out of a full feature matrix ``(n, len(FEATURES))``."""
    return np.asarray(features)[:, [FEATURES.index(n) for n in check_names(names)]]


def hull_areas(parts: np.ndarray, m: int) -> np.ndarray:
    """Area (px²) of the convex hull of each in-slice part's pixel squares, ``(m,)`` (1 where a label is absent)."""
    from scipy.spatial import ConvexHull

    edge = (parts > 0) & ((ndimage.maximum_filter(parts, size=(1, 3, 3)) != parts)
                          | (ndimage.minimum_filter(parts, size=(1, 3, 3), mode="constant") != parts))
    voxels = np.flatnonzero(edge)  # the hull of a part's squares is that of its edge pixels' squares
    labels = parts.ravel()[voxels]
    order = np.argsort(labels, kind="stable")
    labels, voxels = labels[order], voxels[order]
    _, rows, cols = np.unravel_index(voxels, parts.shape)
    corners = np.stack([np.repeat(rows, 4) + np.tile([0, 0, 1, 1], len(rows)),
                        np.repeat(cols, 4) + np.tile([0, 1, 0, 1], len(cols))], axis=1).astype(np.float64)
    areas = np.ones(m)
    present, first = np.unique(labels, return_index=True)
    for label, lo, hi in zip(present, first, np.append(first[1:], len(labels))):
        pts = corners[4 * lo:4 * hi]
        areas[label] = 1.0 if hi - lo == 1 else ConvexHull(pts).volume  # one edge pixel: a one-pixel part
    return areas


def _percentile(values: np.ndarray, labels: np.ndarray, m: int, q: float) -> np.ndarray:
    """Per-label ``q``-quantile of ``values`` (linear interpolation, as ``np.percentile``), 0 for absent labels."""
    order = np.lexsort((values, labels))
    ordered = values[order]
    count = np.bincount(labels, minlength=m)
    start = np.cumsum(count) - count
    pos = q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(count - 1, 0))
    frac = pos - lo
    out = np.zeros(m)
    has = count > 0
    out[has] = ordered[(start + lo)[has]] * (1 - frac[has]) + ordered[(start + hi)[has]] * frac[has]
    return out


def part_features(parts: np.ndarray, n_parts: int, hu: np.ndarray, probs: np.ndarray,
                  names: Sequence[str] = FEATURES) -> np.ndarray:
    """Features ``(n_parts + 1, len(names))`` of the labelled candidates ``parts`` (``(S, H, W)`` ints,
    in-slice components, 0 = background; row 0 of the result is zeros, unused). ``hu``: the model input in HU
    (same shape); ``probs``: lesion probabilities. Ring = pixels within 2 px of a part (in-slice), not in any
    part; band = the part's own pixels within 2 px of its edge. HU features in HU / 1000; areas in pixels."""
    names = check_names(names)
    width = parts.shape[2]
    # only the slices and the box (+ ring) that hold parts: the cost follows the lesions, not the series
    slices = np.flatnonzero(parts.reshape(len(parts), -1).any(axis=1))
    if slices.size == 0:
        return np.zeros((n_parts + 1, len(names)))
    rows = np.flatnonzero(parts[slices].any(axis=(0, 2)))
    cols = np.flatnonzero(parts[slices].any(axis=(0, 1)))
    r0, r1 = max(rows[0] - 2, 0), rows[-1] + 3
    c0, c1 = max(cols[0] - 2, 0), cols[-1] + 3
    parts, hu, probs = (a[slices, r0:r1, c0:c1] for a in (parts, hu, probs))
    inside = np.flatnonzero(parts.ravel())  # the parts' voxels, in order: the same sums as over the whole box
    labels = parts.ravel()[inside]
    m = n_parts + 1
    area = np.maximum(np.bincount(labels, minlength=m).astype(np.float64), 1.0)
    hu_all = hu.ravel()
    hu_f = hu_all[inside].astype(np.float64)

    def mean(values: np.ndarray, labels: np.ndarray = labels, count: np.ndarray = area) -> np.ndarray:
        return np.bincount(labels, weights=values, minlength=m) / count

    f: dict[str, np.ndarray] = {}
    mean_hu = mean(hu_f)
    f["log_area_px"], f["mean_hu"] = np.log(area), mean_hu / 1000
    f["std_hu"] = np.sqrt(np.maximum(mean(hu_f**2) - mean_hu**2, 0.0)) / 1000
    f["solid_frac"] = mean((hu_f > SOLID_HU).astype(np.float64))
    f["ggo_frac"] = mean(((hu_f > GGO_LOW_HU) & (hu_f <= SOLID_HU)).astype(np.float64))
    f["mean_prob"] = mean(probs.ravel()[inside].astype(np.float64))
    grown = ndimage.maximum_filter(parts, size=(1, 5, 5))
    ring = ((parts == 0) & (grown > 0)).ravel()
    ring_labels = grown.ravel()[ring]
    ring_n = np.maximum(np.bincount(ring_labels, minlength=m).astype(np.float64), 1.0)
    ring_hu_f = hu_all[ring].astype(np.float64)
    ring_hu = mean(ring_hu_f, ring_labels, ring_n)
    f["ring_hu"] = ring_hu / 1000
    f["ring_solid_frac"] = mean((ring_hu_f > SOLID_HU).astype(np.float64), ring_labels, ring_n)
    box_rows, box_cols = (inside // parts.shape[2]) % parts.shape[1], inside % parts.shape[2]
    f["medial"] = 1.0 - np.abs(mean((box_cols + c0).astype(np.float64)) - width / 2) / (width / 2)
    if "solidity" in names:
        f["solidity"] = area / np.maximum(hull_areas(parts, m), area)
    if "axis_ratio" in names:  # second moments of the pixel squares (+1/12: one pixel is round, ratio 1)
        r, c = box_rows.astype(np.float64), box_cols.astype(np.float64)
        mr, mc = mean(r), mean(c)
        vr, vc = mean(r * r) - mr**2 + 1 / 12, mean(c * c) - mc**2 + 1 / 12
        cov = mean(r * c) - mr * mc
        half = np.sqrt(((vr - vc) / 2) ** 2 + cov**2)
        f["axis_ratio"] = np.sqrt(np.maximum((vr + vc) / 2 - half, 0.0) / np.maximum((vr + vc) / 2 + half, 1e-12))
    if "hu_p90" in names:
        f["hu_p90"] = _percentile(hu_f, labels, m, 0.9) / 1000
    if "edge_step" in names:
        shrunk = ndimage.minimum_filter(parts, size=(1, 5, 5), mode="constant").ravel()[inside]
        band = (shrunk != labels) | (grown.ravel()[inside] != labels)
        band_n = np.maximum(np.bincount(labels[band], minlength=m).astype(np.float64), 1.0)
        f["edge_step"] = (mean(hu_f[band], labels[band], band_n) - ring_hu) / 1000
    out = np.stack([f[n] for n in names], axis=1)
    out[0] = 0.0
    return out


@dataclass(frozen=True)
class CandidateFilter:
    """Standardised logistic model: ``p = sigmoid(intercept + coef · (x - mean) / scale)`` on the features
    ``names`` (a subset of :data:`FEATURES`, in that order in ``x``); candidates with ``p < threshold`` are dropped
    before the patient rule. ``meta``: what it was trained on."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    names: tuple[str, ...] = FEATURES
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        names = check_names(self.names)
        if not len(self.mean) == len(self.scale) == len(self.coef) == len(names):
            raise ValueError(f"candidate filter: {len(names)} features but {len(self.mean)} means, "
                             f"{len(self.scale)} scales and {len(self.coef)} coefficients")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"candidate filter threshold must lie in [0, 1), not {self.threshold}")

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Probability that each candidate (rows of ``features``, columns ``names``) is a pneumonia lesion."""
        if np.shape(features)[-1] != len(self.names):
            raise ValueError(f"candidate filter needs {len(self.names)} features {list(self.names)}, "
                             f"got {np.shape(features)[-1]}")
        z = (np.asarray(features, float) - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def keeper(self, hu: np.ndarray, probs: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray]:
        """A function ``(parts, n_parts) → bool (n_parts + 1,)``: the candidates this filter keeps."""
        def keep(parts: np.ndarray, n_parts: int) -> np.ndarray:
            kept = self.probability(part_features(parts, n_parts, hu, probs, self.names)) >= self.threshold
            kept[0] = False
            return kept
        return keep

    def to_json(self, path: Path) -> Path:
        body = {"features": list(self.names), "mean": list(self.mean), "scale": list(self.scale),
                "coef": list(self.coef), "intercept": self.intercept, "threshold": self.threshold, "meta": self.meta}
        Path(path).write_text(json.dumps(body, indent=2))
        return Path(path)

    @classmethod
    def from_json(cls, path: Path) -> CandidateFilter:
        try:
            body = json.loads(Path(path).read_text())
            return cls(tuple(body["mean"]), tuple(body["scale"]), tuple(body["coef"]), float(body["intercept"]),
                       float(body.get("threshold", 0.5)), tuple(body["features"]), body.get("meta", {}))
        except (OSError, KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path}: not a candidate filter file ({exc})") from exc

    def with_threshold(self, threshold: float) -> CandidateFilter:
        return CandidateFilter(self.mean, self.scale, self.coef, self.intercept, threshold, self.names, self.meta)


def fit_filter(features: np.ndarray, labels: np.ndarray, *, names: Sequence[str] = FEATURES, c: float = 1.0,
               threshold: float = 0.5, meta: dict | None = None) -> CandidateFilter:
    """L2 logistic regression (``C = c``, classes balanced) on standardised candidate features (columns ``names``)."""
    from sklearn.linear_model import LogisticRegression

    names = check_names(names)
    x, y = np.asarray(features, float), np.asarray(labels).astype(int)
    if x.ndim != 2 or x.shape[1] != len(names) or len(x) != len(y):
        raise ValueError(f"features must be (n, {len(names)}) with one label each, got {x.shape} and {y.shape}")
    if len(np.unique(y)) != 2:
        raise ValueError("candidate filter training needs both lesion and non-lesion candidates")
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
    return CandidateFilter(tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, model.coef_[0])),
                           float(model.intercept_[0]), threshold, names, meta or {})
