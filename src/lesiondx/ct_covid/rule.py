"""Patient rule: positive when ≥ k consecutive slices show a lesion in the same image quadrant."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from lesiondx.data import QUADRANTS


@dataclass(frozen=True)
class PatientDecision:
    """The patient-level call.

    Attributes:
        decision: 1 when some quadrant has a lesion on ≥ ``k`` consecutive slices.
        score: continuous patient score in [0, 1]: the best ``k``-slice window of one quadrant,
            scored by the lowest per-slice quadrant score in it (so ``score ≥ prob_threshold``
            mirrors the rule at pixel level).
        k: the number of consecutive slices required (shortened to the series length if shorter).
        quadrant: quadrant of the longest run (``None`` without any lesion).
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
        return {"decision": self.decision, "score": self.score, "k": self.k, "quadrant": self.quadrant,
                "run": list(self.run) if self.run else None, "run_length": self.run_length}


def _positions(n: int, positions: Sequence[int] | None) -> np.ndarray:
    pos = np.arange(n) if positions is None else np.asarray(positions, dtype=int)
    if pos.shape != (n,):
        raise ValueError(f"{len(pos)} slice positions for {n} slices")
    if n > 1 and np.any(np.diff(pos) <= 0):
        raise ValueError("slice positions must be strictly increasing (order slices before the rule)")
    return pos


def longest_run(
    quadrant_sets: Sequence[Collection[str]], positions: Sequence[int] | None = None
) -> tuple[str | None, int, tuple[int, int] | None]:
    """``(quadrant, length, (first, last))`` of the longest run of consecutive slices with a lesion
    in the same quadrant. A missing slice position (gap) or a slice without that quadrant resets."""
    pos = _positions(len(quadrant_sets), positions)
    best: tuple[str | None, int, tuple[int, int] | None] = (None, 0, None)
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


def window_score(quadrant_scores: np.ndarray, k: int, positions: Sequence[int] | None = None) -> float:
    """Max over quadrants and over runs of ``k`` consecutive slices (no gap) of the lowest slice score.

    ``quadrant_scores`` is ``(slices, 4)`` in :data:`QUADRANTS` order; ``k`` is cut to the number of
    slices. 0.0 for an empty series.
    """
    scores = np.asarray(quadrant_scores, dtype=float)
    if scores.size == 0:
        return 0.0
    if scores.ndim != 2:
        raise ValueError(f"quadrant_scores must be (slices, quadrants), got shape {scores.shape}")
    n = scores.shape[0]
    pos = _positions(n, positions)
    k = max(1, min(k, n))
    best = 0.0
    for start in range(n - k + 1):
        if pos[start + k - 1] - pos[start] != k - 1:
            continue
        best = max(best, float(scores[start : start + k].min(axis=0).max()))
    return best


def consecutive_rule(
    quadrant_sets: Sequence[Collection[str]],
    quadrant_scores: np.ndarray | None = None,
    *,
    k: int = 3,
    positions: Sequence[int] | None = None,
) -> PatientDecision:
    """Apply the k-consecutive-slices-in-one-quadrant rule to a patient's ordered slices.

    ``quadrant_sets[i]`` holds the quadrants with a detected lesion on slice ``i``;
    ``positions`` are slice indices (consecutive means +1); ``quadrant_scores`` (slices × 4) gives the
    continuous patient score (0/1 from the decision when omitted).
    """
    if k < 1:
        raise ValueError(f"k must be ≥ 1, not {k}")
    n = len(quadrant_sets)
    k_eff = max(1, min(k, n))
    quad, length, run = longest_run(quadrant_sets, positions)
    decision = int(n > 0 and length >= k_eff)
    score = float(decision) if quadrant_scores is None else window_score(quadrant_scores, k_eff, positions)
    return PatientDecision(decision, score, k_eff, quad, run, length)
