"""Matplotlib figures for evaluation reports (Agg backend, returned as Figures or base64 PNG)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .binary import ConfusionMatrix  # noqa: E402
from .bootstrap import RocBand  # noqa: E402
from .calibration import CalibrationCurve  # noqa: E402
from .decision import DecisionCurve, NetBenefitBand  # noqa: E402
from .delong import AucResult  # noqa: E402
from .roc import RocCurve, YoudenResult  # noqa: E402

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e")


@dataclass(frozen=True)
class RocSeries:
    """What one ROC line needs: its name, curve, AUC with CI, optional band and cut-off."""

    name: str
    curve: RocCurve
    auc: AucResult
    band: RocBand | None = None
    cutoff: YoudenResult | None = None


def fig_to_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of a figure; closes it."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def fig_to_base64(fig: Figure, dpi: int = 110) -> str:
    """Encode a figure as a base64 PNG string (for ``<img src="data:image/png;base64,...">``)
    and close it."""
    return base64.b64encode(fig_to_png(fig, dpi)).decode("ascii")


def roc_figure(series: Sequence[RocSeries], title: str = "ROC curve") -> Figure:
    """ROC curves (sensitivity vs 1 - specificity) with optional bootstrap bands and cut-offs; the legend gives each
    AUC with its DeLong CI (level and method stated)."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="chance")
    for k, s in enumerate(series):
        color = _COLORS[k % len(_COLORS)]
        if s.band is not None:
            ax.fill_between(
                s.band.fpr,
                s.band.tpr_low,
                s.band.tpr_high,
                color=color,
                alpha=0.18,
                step="post",
                label=f"{s.name} {s.band.conf_level:.0%} bootstrap band",
            )
        label = (f"{s.name}: AUC {s.auc.auc:.3f} ({s.auc.conf_level:.0%} CI {s.auc.ci_low:.3f}–{s.auc.ci_high:.3f}, "
                 "DeLong)")
        # Reversed: decreasing threshold, so both rates are non-decreasing along the path.
        ax.plot(s.curve.fpr[::-1], s.curve.tpr[::-1], color=color, lw=2, label=label)
        if s.cutoff is not None:
            ax.plot(
                1 - s.cutoff.specificity,
                s.cutoff.sensitivity,
                "o",
                color=color,
                mec="black",
                label=f"cut-off {s.cutoff.threshold:.3g}",
            )
    return _unit_square(fig, ax, "1 - specificity", "Sensitivity", title, legend="lower right", fontsize=7.5)


def _unit_square(fig: Figure, ax, xlabel: str, ylabel: str, title: str, *, legend: str, fontsize: float = 8) -> Figure:
    """Finish a probability-vs-probability plot: [0, 1] square axes, labels, title, legend."""
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc=legend, fontsize=fontsize)
    fig.tight_layout()
    return fig


def calibration_figure(cal: CalibrationCurve, title: str = "Calibration") -> Figure:
    """Observed event rate (with its 95% CI per bin, when the curve has them) vs mean predicted probability
    per bin, marker area ~ bin size, n per bin written beside each marker."""
    fig, ax = plt.subplots(figsize=(5.2, 5.0))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8, label="perfect calibration")
    size = 20 + 180 * cal.counts / max(cal.counts.max(), 1)
    if cal.observed_ci_low.size == cal.observed.size and cal.observed.size:
        below = np.clip(cal.observed - cal.observed_ci_low, 0, None)  # 0, not -1e-17, at an empty or full bin
        above = np.clip(cal.observed_ci_high - cal.observed, 0, None)
        ax.errorbar(cal.mean_predicted, cal.observed, yerr=[below, above],
                    fmt="none", ecolor=_COLORS[0], alpha=0.6, capsize=3, lw=1, label="95% CI per bin (Wilson)")
    for x, yv, n in zip(cal.mean_predicted, cal.observed, cal.counts):
        ax.annotate(f"n={n}", (x, yv), textcoords="offset points", xytext=(6, -10), fontsize=6.5, color="#444")
    ax.plot(cal.mean_predicted, cal.observed, "-", color=_COLORS[0], lw=1.5)
    ax.scatter(
        cal.mean_predicted, cal.observed, s=size, color=_COLORS[0], zorder=3, label=f"model (Brier {cal.brier:.3f})"
    )
    _unit_square(fig, ax, "Mean predicted probability", "Observed fraction positive", title, legend="best")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, fontsize=7, frameon=False)  # bars fill the square
    fig.tight_layout()
    return fig


def decision_figure(dc: DecisionCurve, title: str = "Decision curve", band: NetBenefitBand | None = None) -> Figure:
    """Net benefit of the model (with its bootstrap ``band`` when given), treat-all and treat-none against the
    threshold probability."""
    fig = decision_figure_models([("model", dc)], title)
    if band is not None:
        ax = fig.axes[0]
        ax.fill_between(band.thresholds, band.low, band.high, color=_COLORS[0], alpha=0.18, lw=0,
                        label=f"model {band.conf_level:.0%} CI (bootstrap)")
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, max(top, float(np.max(band.high)) * 1.05 + 0.01))  # the whole band in view
        ax.legend(fontsize=8)
    return fig


def decision_figure_models(curves: Sequence[tuple[str, DecisionCurve]], title: str = "Decision curve") -> Figure:
    """Net benefit of several models (same cases: treat-all is the first curve's) on one plot."""
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    for k, (name, curve) in enumerate(curves):  # same colour per model as in roc_figure
        ax.plot(curve.thresholds, curve.model, color=_COLORS[k % len(_COLORS)], lw=2, label=name)
    dc = curves[0][1]
    ax.plot(dc.thresholds, dc.treat_all, color="grey", ls="--", lw=1.2, label="treat all")
    ax.plot(dc.thresholds, dc.treat_none, color="black", lw=1.2, label="treat none")
    top = max(dc.prevalence, *(float(np.max(c.model)) for _, c in curves)) * 1.1 + 0.01
    ax.set_ylim(-0.05 * max(top, 0.1) - 0.02, top)
    ax.set_xlim(0, float(dc.thresholds.max()))
    ax.set_xlabel("Threshold probability")
    ax.set_ylabel("Net benefit")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def confusion_figure(
    cm: ConfusionMatrix, labels: tuple[str, str] = ("negative", "positive"), title: str = "Confusion matrix"
) -> Figure:
    """2x2 confusion matrix heat map with counts and row percentages."""
    arr = cm.as_array()
    fig, ax = plt.subplots(figsize=(4.4, 3.8))
    ax.imshow(arr, cmap="Blues", vmin=0, vmax=max(arr.max(), 1))
    rows = arr.sum(axis=1, keepdims=True)
    for i in range(2):
        for j in range(2):
            pct = 100 * arr[i, j] / rows[i, 0] if rows[i, 0] else 0.0
            color = "white" if arr[i, j] > arr.max() / 2 else "black"
            ax.text(j, i, f"{arr[i, j]}\n({pct:.0f}%)", ha="center", va="center", color=color, fontsize=12)
    ax.set_xticks([0, 1], [f"pred {labels[0]}", f"pred {labels[1]}"])
    ax.set_yticks([0, 1], [f"true {labels[0]}", f"true {labels[1]}"])
    ax.set_title(title)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class SeriesProfile:
    """One series' per-slice scores for :func:`series_profile_figure`: ``name`` (the panel title), slice
    ``positions``, ``scores`` (probabilities 0..1), per-slice ``truth`` (0/1, or ``None`` when unknown) and the
    ``run`` (first, last position) the series decision rests on (``None``: none)."""

    name: str
    positions: np.ndarray
    scores: np.ndarray
    truth: np.ndarray | None = None
    run: tuple[int, int] | None = None


def series_profile_figure(profiles: Sequence[SeriesProfile], threshold: float, title: str = "Slice scores per series",
                          columns: int = 3) -> Figure:
    """One small panel per series: slice score against slice position, the slice threshold (dashed), the slices
    the truth marks positive (red band) and the run the decision rests on (green band); shared probability axis."""
    n = max(len(profiles), 1)
    cols = min(n, columns)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.2 * rows + 0.6), squeeze=False, sharey=True)
    for ax, p in zip(axes.flat, profiles):
        pos, score = np.asarray(p.positions), np.asarray(p.scores, float)
        if p.truth is not None and np.any(p.truth):
            ax.fill_between(pos, 0, 1, where=np.asarray(p.truth) > 0, step="mid", color=_COLORS[1], alpha=0.15,
                            lw=0, label="truth positive")
        if p.run is not None:
            ax.axvspan(p.run[0] - 0.5, p.run[1] + 0.5, color=_COLORS[2], alpha=0.25, lw=0, label="decisive run")
        ax.plot(pos, score, color=_COLORS[0], lw=1.1, label="slice score")
        ax.axhline(threshold, ls="--", color="grey", lw=0.8, label=f"threshold {threshold:g}")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(p.name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(profiles):]:
        ax.axis("off")
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.supxlabel("slice index (0 = most superior)", fontsize=8, y=0.06 / rows + 0.02)
    fig.supylabel("lesion probability", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.08 / rows + 0.03, 1, 1))
    return fig


def per_case_figure(x: np.ndarray, y: np.ndarray, mean: float | None, ci: Sequence[float] | None, *, xlabel: str,
                    ylabel: str, title: str, log_x: bool = False) -> Figure:
    """One dot per case (e.g. a slice's Dice against its lesion size), the mean as a line and its CI as a band."""
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    if mean is not None:
        if ci is not None and None not in ci:
            ax.axhspan(ci[0], ci[1], color=_COLORS[0], alpha=0.15, lw=0, label=f"95% CI {ci[0]:.3f}–{ci[1]:.3f}")
        ax.axhline(mean, color=_COLORS[0], lw=1.2, label=f"mean {mean:.3f}")
    ax.scatter(x, y, s=16, color=_COLORS[0], alpha=0.8, zorder=3, label=f"cases (n = {len(y)})")
    if log_x:
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
