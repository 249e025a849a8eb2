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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

FEATURES = ("log_area_px", "mean_hu", "std_hu", "solid_frac", "ggo_frac", "mean_prob", "ring_hu",
            "ring_solid_frac", "medial")
SOLID_HU, GGO_LOW_HU = -300.0, -800.0  # solid soft tissue above; ground glass between
FILTER_FILE = "candidate_filter.json"


def part_features(parts: np.ndarray, n_parts: int, hu: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Features ``(n_parts + 1, len(FEATURES))`` of the labelled candidates ``parts`` (``(S, H, W)`` ints,
    in-slice components, 0 = background; row 0 of the result is zeros, unused). ``hu``: the model input in HU
    (same shape); ``probs``: lesion probabilities. Ring = pixels within 2 px of a part (in-slice), not in any part."""
    width = parts.shape[2]
    # only the slices and the box (+ ring) that hold parts: the cost follows the lesions, not the series
    slices = np.flatnonzero(parts.reshape(len(parts), -1).any(axis=1))
    if slices.size == 0:
        return np.zeros((n_parts + 1, len(FEATURES)))
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

    mean_hu = mean(hu_f)
    std_hu = np.sqrt(np.maximum(mean(hu_f**2) - mean_hu**2, 0.0))
    solid = mean((hu_f > SOLID_HU).astype(np.float64))
    ggo = mean(((hu_f > GGO_LOW_HU) & (hu_f <= SOLID_HU)).astype(np.float64))
    mean_prob = mean(probs.ravel()[inside].astype(np.float64))
    grown = ndimage.maximum_filter(parts, size=(1, 5, 5))
    ring = ((parts == 0) & (grown > 0)).ravel()
    ring_labels = grown.ravel()[ring]
    ring_n = np.maximum(np.bincount(ring_labels, minlength=m).astype(np.float64), 1.0)
    ring_hu_f = hu_all[ring].astype(np.float64)
    ring_hu = mean(ring_hu_f, ring_labels, ring_n)
    ring_solid = mean((ring_hu_f > SOLID_HU).astype(np.float64), ring_labels, ring_n)
    centre = mean((inside % parts.shape[2] + c0).astype(np.float64))
    medial = 1.0 - np.abs(centre - width / 2) / (width / 2)
    return np.stack([np.log(area), mean_hu / 1000, std_hu / 1000, solid, ggo, mean_prob, ring_hu / 1000,
                     ring_solid, medial], axis=1)


@dataclass(frozen=True)
class CandidateFilter:
    """Standardised logistic model: ``p = sigmoid(intercept + coef · (x - mean) / scale)``; candidates with
    ``p < threshold`` are dropped before the patient rule. ``meta``: what it was trained on."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    threshold: float = 0.5
    names: tuple[str, ...] = FEATURES
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if tuple(self.names) != FEATURES or not len(self.mean) == len(self.scale) == len(self.coef) == len(FEATURES):
            raise ValueError(f"candidate filter features {list(self.names)} differ from {list(FEATURES)}")
        if not 0.0 <= self.threshold < 1.0:
            raise ValueError(f"candidate filter threshold must lie in [0, 1), not {self.threshold}")

    def probability(self, features: np.ndarray) -> np.ndarray:
        """Probability that each candidate (rows of ``features``) is a pneumonia lesion."""
        z = (np.asarray(features, float) - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def keeper(self, hu: np.ndarray, probs: np.ndarray) -> Callable[[np.ndarray, int], np.ndarray]:
        """A function ``(parts, n_parts) → bool (n_parts + 1,)``: the candidates this filter keeps."""
        def keep(parts: np.ndarray, n_parts: int) -> np.ndarray:
            kept = self.probability(part_features(parts, n_parts, hu, probs)) >= self.threshold
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
        except (OSError, KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not a candidate filter file ({exc})") from exc

    def with_threshold(self, threshold: float) -> CandidateFilter:
        return CandidateFilter(self.mean, self.scale, self.coef, self.intercept, threshold, self.names, self.meta)


def fit_filter(features: np.ndarray, labels: np.ndarray, *, c: float = 1.0, threshold: float = 0.5,
               meta: dict | None = None) -> CandidateFilter:
    """L2 logistic regression (``C = c``, classes balanced) on standardised candidate features."""
    from sklearn.linear_model import LogisticRegression

    x, y = np.asarray(features, float), np.asarray(labels).astype(int)
    if x.ndim != 2 or x.shape[1] != len(FEATURES) or len(x) != len(y):
        raise ValueError(f"features must be (n, {len(FEATURES)}) with one label each, got {x.shape} and {y.shape}")
    if len(np.unique(y)) != 2:
        raise ValueError("candidate filter training needs both lesion and non-lesion candidates")
    mean, scale = x.mean(0), x.std(0)
    scale = np.where(scale > 1e-9, scale, 1.0)
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
    return CandidateFilter(tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, model.coef_[0])),
                           float(model.intercept_[0]), threshold, FEATURES, meta or {})
