"""Lesion detection metrics: precision, recall and F1 at IoU thresholds with greedy matching."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ._validate import ArrayLike


@dataclass(frozen=True)
class DetectionPRF:
    """Counts and rates at one IoU threshold, pooled over all images."""

    iou_threshold: float
    score_threshold: float
    tp: int
    fp: int
    fn: int
    precision: float  # tp / (tp + fp); NaN when nothing was predicted
    recall: float  # tp / (tp + fn); NaN when there is no true box
    f1: float


def _boxes(b: ArrayLike, what: str) -> np.ndarray:
    arr = np.asarray(b, dtype=float).reshape(-1, 4) if np.size(b) else np.zeros((0, 4))
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contain NaN or infinite coordinates")
    if np.any(arr[:, 2] < arr[:, 0]) or np.any(arr[:, 3] < arr[:, 1]):
        raise ValueError(f"{what} must be [x1, y1, x2, y2] with x2 >= x1 and y2 >= y1")
    return arr


def iou_matrix(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Intersection over union of every box in ``a`` (n, 4) with every box in ``b`` (m, 4)."""
    x, y = _boxes(a, "boxes a"), _boxes(b, "boxes b")
    ix1 = np.maximum(x[:, None, 0], y[None, :, 0])
    iy1 = np.maximum(x[:, None, 1], y[None, :, 1])
    ix2 = np.minimum(x[:, None, 2], y[None, :, 2])
    iy2 = np.minimum(x[:, None, 3], y[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])
    area_b = (y[:, 2] - y[:, 0]) * (y[:, 3] - y[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def greedy_match(iou: np.ndarray, scores: np.ndarray, iou_threshold: float) -> int:
    """Number of true positives when predictions, by decreasing score, each take the unmatched
    true box of highest IoU (>= ``iou_threshold``)."""
    free = np.ones(iou.shape[1], dtype=bool)
    tp = 0
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where(free, iou[i], -1.0)
        if cand.size and cand.max() >= iou_threshold:
            free[int(cand.argmax())] = False
            tp += 1
    return tp


def detection_prf(
    pred_boxes: Sequence[ArrayLike],
    pred_scores: Sequence[ArrayLike],
    true_boxes: Sequence[ArrayLike],
    iou_thresholds: Sequence[float] = (0.1, 0.3, 0.5),
    score_threshold: float = 0.25,
) -> dict[float, DetectionPRF]:
    """Precision/recall/F1 per IoU threshold; each argument is a list with one entry per image.

    Boxes are [x1, y1, x2, y2] in pixels; predictions with score < ``score_threshold`` are dropped.
    """
    if not (len(pred_boxes) == len(pred_scores) == len(true_boxes)):
        raise ValueError(
            f"need one entry per image: got {len(pred_boxes)} pred_boxes, {len(pred_scores)} "
            f"pred_scores, {len(true_boxes)} true_boxes"
        )
    if any(not 0.0 < t <= 1.0 for t in iou_thresholds):
        raise ValueError(f"IoU thresholds must lie in (0, 1], got {list(iou_thresholds)}")
    per_image = []
    for k, (pb, ps, tb) in enumerate(zip(pred_boxes, pred_scores, true_boxes)):
        p, t = _boxes(pb, f"pred_boxes[{k}]"), _boxes(tb, f"true_boxes[{k}]")
        s = np.asarray(ps, dtype=float).reshape(-1)
        if s.size != p.shape[0]:
            raise ValueError(f"image {k}: {p.shape[0]} boxes but {s.size} scores")
        if np.any(np.isnan(s)):
            raise ValueError(f"image {k}: NaN prediction scores")
        keep = s >= score_threshold
        per_image.append((iou_matrix(p[keep], t), s[keep], t.shape[0]))
    out: dict[float, DetectionPRF] = {}
    for thr in iou_thresholds:
        tp = sum(greedy_match(iou, s, thr) for iou, s, _ in per_image)
        n_pred = sum(s.size for _, s, _ in per_image)
        n_true = sum(n for _, _, n in per_image)
        prec = tp / n_pred if n_pred else float("nan")
        rec = tp / n_true if n_true else float("nan")
        f1 = 2 * tp / (n_pred + n_true) if (n_pred + n_true) else float("nan")
        out[float(thr)] = DetectionPRF(float(thr), float(score_threshold), tp, n_pred - tp, n_true - tp, prec, rec, f1)
    return out
