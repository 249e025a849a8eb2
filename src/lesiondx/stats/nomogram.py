"""Nomogram of a fitted logistic model (Harrell-style points chart) drawn with matplotlib.

Each variable gets a points axis: its contribution ``beta * (x - x_ref)`` is scaled so the
variable with the widest effect spans 0-100 points. Summing the points and reading the total
on the "Total points" axis gives the predicted probability on the axis below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .fusion import LogisticModel  # noqa: E402

_PROB_TICKS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class NomogramScale:
    """Points per variable value: ``points = (contribution - min contribution) * scale``."""

    rows: tuple[tuple[str, tuple[float, ...], tuple[str, ...], float], ...]  # name, tick points, labels, span
    scale: float  # points per unit of log-odds
    lp_at_zero: float  # log-odds when every variable sits at its zero-points value
    max_total: float

    def probability(self, total_points: float | np.ndarray) -> np.ndarray:
        """Predicted probability for a total score."""
        lp = self.lp_at_zero + np.asarray(total_points, dtype=float) / self.scale
        return 1.0 / (1.0 + np.exp(-lp))


def _nice_ticks(lo: float, hi: float, n_ticks: int) -> np.ndarray:
    """Round tick values within [lo, hi] (matplotlib's MaxNLocator)."""
    if hi <= lo:
        return np.array([lo])
    ticks = MaxNLocator(nbins=n_ticks).tick_values(lo, hi)
    span = hi - lo
    return ticks[(ticks >= lo - 1e-9 * span) & (ticks <= hi + 1e-9 * span)]


def _variable_effects(model: LogisticModel, n_ticks: int) -> list[tuple[str, np.ndarray, list[str], float, float]]:
    """Per source variable: log-odds contribution at its ticks, tick labels, and the
    contribution's min and max over the training range (or over the levels)."""
    coef = dict(zip(model.terms, model.coef[1:]))
    out = []
    for var in model.variables:
        if var in model.levels:
            levs = model.levels[var]
            contrib = np.array([0.0] + [coef[f"{var}[{lev}]"] for lev in levs[1:]])
            out.append((var, contrib, list(levs), float(contrib.min()), float(contrib.max())))
        else:
            lo, hi = model.ranges[var]
            ticks = _nice_ticks(lo, hi, n_ticks)
            ends = coef[var] * np.array([lo, hi])
            out.append((var, coef[var] * ticks, [f"{t:g}" for t in ticks], float(ends.min()), float(ends.max())))
    return out


def nomogram_scale(model: LogisticModel, n_ticks: int = 6) -> NomogramScale:
    """Compute the points scale of the nomogram of ``model``."""
    effects = _variable_effects(model, n_ticks)
    widest = max(cmax - cmin for *_, cmin, cmax in effects)
    if widest == 0.0:
        raise ValueError("all coefficients are zero; nothing to draw")
    scale = 100.0 / widest
    rows = tuple(
        (name, tuple((c - cmin) * scale), tuple(lbl), (cmax - cmin) * scale) for name, c, lbl, cmin, cmax in effects
    )
    lp0 = float(model.coef[0] + sum(cmin for *_, cmin, _ in effects))
    max_total = float(sum((cmax - cmin) * scale for *_, cmin, cmax in effects))
    return NomogramScale(rows=rows, scale=scale, lp_at_zero=lp0, max_total=max_total)


def _axis_row(ax, y: float, positions, labels, name: str, span: tuple[float, float] | None = None) -> None:
    lo, hi = span if span is not None else (min(positions), max(positions))
    ax.hlines(y, lo, hi, color="black", lw=1.2)
    for x, lbl in zip(positions, labels):
        ax.vlines(x, y, y + 0.12, color="black", lw=1)
        ax.text(x, y + 0.18, lbl, ha="center", va="bottom", fontsize=8)
    ax.text(-4, y, name, ha="right", va="center", fontsize=10, fontweight="bold")


def plot_nomogram(model: LogisticModel, *, title: str = "Nomogram", n_ticks: int = 6) -> Figure:
    """Draw the nomogram; returns the matplotlib Figure (Agg backend)."""
    sc = nomogram_scale(model, n_ticks)
    n_rows = len(sc.rows) + 3
    fig, ax = plt.subplots(figsize=(9, 0.75 * n_rows + 1))
    y = n_rows - 1
    pts = np.linspace(0, 100, 11)
    _axis_row(ax, y, pts, [f"{p:.0f}" for p in pts], "Points")
    for name, points, labels, span in sc.rows:
        y -= 1
        _axis_row(ax, y, points, labels, name, (0.0, span))
    # Total points are compressed so that their full range fits the 0-100 width.
    y -= 1
    total_ticks = _nice_ticks(0.0, sc.max_total, 10)
    to_x = 100.0 / sc.max_total if sc.max_total > 0 else 1.0
    _axis_row(ax, y, total_ticks * to_x, [f"{t:.0f}" for t in total_ticks], "Total points", (0.0, 100.0))
    y -= 1
    p_lo, p_hi = sc.probability(0.0), sc.probability(sc.max_total)
    probs = [p for p in _PROB_TICKS if p_lo <= p <= p_hi]
    if probs:
        tot = (np.log(np.array(probs) / (1 - np.array(probs))) - sc.lp_at_zero) * sc.scale
        _axis_row(ax, y, tot * to_x, [f"{p:g}" for p in probs], "Probability")
    ax.set_xlim(-30, 106)
    ax.set_ylim(y - 0.6, n_rows - 0.3)
    ax.axis("off")
    ax.set_title(title)
    fig.tight_layout()
    return fig
