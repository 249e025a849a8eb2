"""Self-contained HTML evaluation report and metrics.json from a prediction table.

Input: one row per image with ``image_id, patient_id, label, score`` (+ optional stratum
columns). Positive and negative labels are explicit (:mod:`.levels`): every other label is
excluded and counted. The report evaluates images and patients (image scores aggregated per
patient, mean probability by default): ROC with DeLong CI and a patient-level bootstrap band,
metrics at a threshold fixed before the evaluation (e.g. the model's shipped threshold) or,
without one, at the Youden cut-off chosen on these data (labelled optimistic), confusion matrix,
calibration (curve, Brier, slope and intercept), decision curve and stratified AUC tables.
Figures are embedded as base64 PNG, so ``report.html`` opens offline, and written beside it as PNG files
(``roc_<unit>.png``, ``calibration_...``, ``decision_...``, ``confusion_...``; names in metrics.json ``figures``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .aggregate import BinaryRule, aggregate_binary, require_one_label_per_patient
from .binary import metrics_at_threshold
from .bootstrap import bootstrap_auc, bootstrap_roc_band
from .calibration import calibration_curve, hosmer_lemeshow, logistic_recalibration
from .decision import net_benefit, net_benefit_band
from .delong import auc_delong
from .levels import select_levels
from .report_html import metric_rows, render_html, strata_tables
from .roc import YoudenResult, roc_curve, youden_threshold
from .scores import missing_note, read_scores, row_places

SMALL_N = 10  # fewer positives or negatives than this: the CIs are flagged as unreliable
CHOSEN = "chosen on these data (Youden): optimistic, not a validated operating point"


@dataclass(frozen=True)
class ReportResult:
    """Paths written by :func:`write_report` and the metrics it saved."""

    out_dir: Path
    html_path: Path
    metrics_path: Path
    metrics: dict[str, Any]


def to_jsonable(obj: Any) -> Any:
    """Recursively convert numpy scalars/arrays to Python types and NaN/inf to None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer, int)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        return None if not math.isfinite(float(obj)) else float(obj)
    return obj


def small_n_warning(n_pos: int, n_neg: int, unit: str) -> str | None:
    """A warning when either class has fewer than :data:`SMALL_N` cases, else None."""
    if min(n_pos, n_neg) >= SMALL_N:
        return None
    return (f"only {n_pos} positive and {n_neg} negative {unit}: confidence intervals are unreliable "
            f"(fewer than {SMALL_N} per class)")


def need_two_per_class(y: np.ndarray, name: str) -> None:
    """``ValueError`` unless ``y`` holds at least 2 positives and 2 negatives (DeLong needs them)."""
    if y.sum() < 2 or (~y).sum() < 2:
        raise ValueError(f"{name}: need at least 2 positive and 2 negative cases, got {int(y.sum())} and "
                         f"{int((~y).sum())}")


def _calibration(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    try:
        r = logistic_recalibration(y, s)
    except ValueError as exc:
        return {"slope": None, "intercept": None, "note": str(exc)}
    return {"slope": r.slope, "slope_ci": list(r.slope_ci), "intercept": r.intercept,
            "intercept_ci": list(r.intercept_ci),
            "method": "logistic recalibration: slope of logit(p), intercept with logit(p) as offset; Wald 95% CI"}


def _evaluate_level(
    y: np.ndarray,
    s: np.ndarray,
    *,
    name: str,
    unit: str,
    groups: np.ndarray | None,
    threshold: float | None,
    threshold_source: str,
    n_boot: int,
    seed: int,
    class_names: tuple[str, str],
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Metrics dict, base64 figures and notes for one level (images or patients)."""
    from .plots import RocSeries, calibration_figure, confusion_figure, decision_figure, fig_to_base64, roc_figure

    need_two_per_class(y, name)
    notes: list[str] = []
    auc = auc_delong(y, s)
    boot = bootstrap_auc(y, s, groups=groups, n_boot=n_boot, seed=seed)
    band = bootstrap_roc_band(y, s, groups=groups, n_boot=n_boot, seed=seed)
    youden = youden_threshold(y, s)
    thr = youden.threshold if threshold is None else float(threshold)
    m = metrics_at_threshold(y, s, thr)
    cutoff = YoudenResult(thr, m.sensitivity.estimate, m.specificity.estimate, float("nan"), 1)
    warning = small_n_warning(int(y.sum()), int((~y).sum()), unit)
    metrics: dict[str, Any] = {
        "n": int(y.size),
        "n_pos": int(y.sum()),
        "n_neg": int((~y).sum()),
        "auc": auc.auc,
        "auc_ci": [auc.ci_low, auc.ci_high],
        "auc_se": auc.se,
        "auc_ci_method": "delong",
        "auc_bootstrap_ci": [boot.ci_low, boot.ci_high],
        "n_boot": n_boot,
        "seed": seed,
        "threshold": thr,
        "threshold_method": "youden" if threshold is None else "fixed",
        "threshold_chosen_on_these_data": threshold is None,
        "threshold_source": CHOSEN if threshold is None else f"fixed before this evaluation: {threshold_source}",
        "youden": {"threshold": youden.threshold, "sensitivity": youden.sensitivity,
                   "specificity": youden.specificity, "chosen_on_these_data": True, "source": CHOSEN},
        "warnings": [warning] if warning else [],
    }
    if threshold is not None and not s.min() < thr <= s.max():
        called = "negative" if thr > s.max() else "positive"
        units = "; is it in the scores' units?" if (thr > 1) != (s.max() > 1) else ""
        metrics["warnings"].append(f"the fixed threshold {thr:.4g} lies outside the scores ({s.min():.4g} to "
                                   f"{s.max():.4g}): every case is called {called}{units}")
    n_groups = 0 if groups is None else int(np.unique(groups).size)
    if 0 < n_groups < y.size:
        metrics["warnings"].append(
            f"{y.size} {unit} from {n_groups} patients: the DeLong CI treats {unit} as independent (too narrow when "
            f"a patient's {unit} agree); the bootstrap CI resampling whole patients does not: "
            f"{boot.ci_low:.3f} – {boot.ci_high:.3f}")
    if auc.se == 0.0:
        metrics["warnings"].append(
            f"AUC {auc.auc:.3f}: the classes are perfectly separated, so DeLong's standard error is 0 and its CI "
            f"(and the bootstrap's) collapse to a point; they do not show the uncertainty of {auc.n_pos} positive "
            f"and {auc.n_neg} negative {unit}")
    if auc.ci_high < 0.5:
        metrics["warnings"].append("AUC below 0.5, its 95% CI too: higher scores went with the negative class; "
                                   "lesiondx never flips the direction (pROC direction '<'): if lower scores mean "
                                   "positive, negate the score")
    for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
        p = getattr(m, key)
        metrics[key] = p.estimate
        metrics[f"{key}_ci"] = [p.ci_low, p.ci_high]
    metrics["f1"] = m.f1
    metrics["confusion"] = {"tp": m.confusion.tp, "fp": m.confusion.fp, "tn": m.confusion.tn, "fn": m.confusion.fn}
    band_note = "patients resampled" if groups is not None else "cases resampled within class"
    how = "fixed" if threshold is not None else "Youden, chosen on these data"
    figures = {
        "roc": fig_to_base64(
            roc_figure([RocSeries("model", roc_curve(y, s), auc, band, cutoff)], title=f"ROC — {name} ({band_note})")
        ),
        "confusion": fig_to_base64(
            confusion_figure(m.confusion, class_names, title=f"Confusion matrix at {thr:.3g} ({how}) — {name}")
        ),
    }
    if np.all((s >= 0) & (s <= 1)):
        cal = calibration_curve(y, s, n_bins=10)
        metrics["brier"] = cal.brier
        metrics["calibration_bins"] = cal.to_dict()
        metrics["calibration"] = _calibration(y, s)
        figures["calibration"] = fig_to_base64(calibration_figure(cal, title=f"Calibration — {name}"))
        hl_groups = min(10, y.size // 5)  # deciles, but at least 5 cases a group (the chi-square approximation)
        if hl_groups >= 3:
            hl = hosmer_lemeshow(y, s, n_groups=hl_groups)
            metrics["hosmer_lemeshow"] = {"statistic": hl.statistic, "df": hl.df, "p": hl.p, "groups": hl_groups}
        dc = net_benefit(y, s)
        nb_band = net_benefit_band(y, s, groups=groups, n_boot=n_boot, seed=seed)
        metrics["decision_curve"] = {"thresholds": dc.thresholds, "model": dc.model, "treat_all": dc.treat_all,
                                     "model_ci": [nb_band.low, nb_band.high],
                                     "model_ci_method": "percentile bootstrap, " + ("patients" if groups is not None
                                                                                   else "cases") + " resampled"}
        figures["decision"] = fig_to_base64(decision_figure(dc, title=f"Decision curve — {name}", band=nb_band))
    else:
        percent_like = s.max() <= 100 and s.min() >= 0
        hint = " (if they are percentages, divide by 100 or write them as 83%)" if percent_like else ""
        notes.append(f"Scores are not probabilities in [0, 1] (they range from {s.min():.4g} to {s.max():.4g}): "
                     f"calibration and decision curves are skipped{hint}.")
    return metrics, figures, notes


def _write_figures(out: Path, levels: list[dict[str, Any]], unit: str) -> dict[str, str]:
    """Each level's figures as PNG files beside report.html (``roc_<unit>.png``, ``roc_patient.png``, ...: for slides
    and papers); their names by figure."""
    import base64

    written = {}
    for level in levels:
        suffix = unit if level["key"] == "image" else level["key"]
        for kind, encoded in level["figures"].items():
            name = f"{kind}_{suffix}.png"
            (out / name).write_bytes(base64.b64decode(encoded))
            written[f"{kind}_{suffix}"] = name
    return written


def write_report(
    predictions: pd.DataFrame,
    out_dir: str | Path,
    *,
    label_col: str = "label",
    positive: Any = 1,
    negative: Any = None,
    score_col: str = "score",
    patient_col: str | None = "patient_id",
    strata: Sequence[str] = (),
    title: str = "lesiondx evaluation report",
    threshold: float | None = None,
    threshold_source: str = "given by the user",
    patient_rule: BinaryRule = "mean",
    n_boot: int = 500,
    seed: int = 0,
    notes: Sequence[str] = (),
    unit: str = "image",
) -> ReportResult:
    """Evaluate ``predictions`` per image and per patient; write ``report.html``, ``metrics.json`` and the figures as
    PNG files.

    ``positive`` / ``negative`` name the label values (one or several each; without ``negative``
    the one other label); rows with any other label are excluded and counted in
    ``metrics["levels"]["excluded"]``. Rows without a score (empty cell, ``NA``) are left out and
    counted (``n_missing_score``, a note naming the first), as pROC's ``na.rm``; scores written as
    percentages (``83%``) are read as probabilities (:mod:`.scores`). ``threshold`` fixes the cut-off before
    the evaluation (``threshold_source`` says where it came from); without it the Youden cut-off of each level is
    used and labelled as chosen on these data. Patient labels must be constant within a patient;
    without ``patient_col`` (or when absent from the table) the patient section is omitted, and
    with fewer than 2 patients per class it is skipped with a note. ``unit``: what a row is
    (``image``, ``slice``, ``lesion``), used in headings.
    """
    df = predictions.reset_index(drop=True)
    need = [label_col, score_col, *strata] + ([patient_col] if patient_col and patient_col in df.columns else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"prediction table lacks column(s) {missing}; has {list(df.columns)}")
    places = row_places(df[score_col])  # before any row is dropped: errors name file lines
    col = read_scores(df[score_col], score_col, places)
    sel = select_levels(df[label_col], positive, negative)
    scored = replace(col, values=col.values[sel.keep], n_missing=int((~col.present[sel.keep]).sum()))
    df = df[sel.keep].reset_index(drop=True).assign(**{score_col: scored.values})
    missing = missing_note(scored, df["image_id"] if "image_id" in df.columns else None,
                           [w for w, k in zip(places, sel.keep) if k])
    df, y = df[scored.present].reset_index(drop=True), sel.y[scored.present]
    pos_name, neg_name = " or ".join(sel.positive), " or ".join(sel.negative)
    class_names = (neg_name, pos_name)
    has_patients = bool(patient_col) and patient_col in df.columns
    groups = df[patient_col].astype(str).to_numpy() if has_patients else None
    top_notes = list(notes)
    if sel.excluded:
        top_notes.append(f"Excluded (neither positive nor negative): {sel.excluded_text}.")
    top_notes += [f"{n[0].upper()}{n[1:]}." for n in (missing, col.note) if n]
    if "image_id" in df.columns and df["image_id"].duplicated().any():
        repeated = df["image_id"][df["image_id"].duplicated(keep=False)]
        top_notes.append(f"{repeated.nunique()} image_id(s) appear on more than one row (first: "
                         f"{repeated.iloc[0]!r}, {int((repeated == repeated.iloc[0]).sum())} rows): each row is "
                         "counted as its own case.")

    img_m, img_f, img_notes = _evaluate_level(
        y, df[score_col].to_numpy(), name=f"per {unit}", unit=f"{unit}s", groups=groups, threshold=threshold,
        threshold_source=threshold_source, n_boot=n_boot, seed=seed, class_names=class_names,
    )
    work = df.assign(_y=y.astype(int))
    img_tables, img_m["strata"] = strata_tables(work, strata, "_y", score_col)
    levels = [{"key": "image", "heading": f"Per-{unit} evaluation", "metrics": img_m, "rows": metric_rows(img_m),
               "figures": img_f, "notes": img_notes, "strata": img_tables}]
    metrics: dict[str, Any] = {
        "title": title,
        "positive": pos_name,
        "levels": sel.to_dict(),
        "label_col": label_col,
        "score_col": score_col,
        "n_images": int(len(df)),
        "n_missing_score": scored.n_missing,
        "unit": unit,
        "notes": top_notes,
        "image": img_m,
        "patient": None,
    }
    if has_patients:
        require_one_label_per_patient(work, patient_col, "_y", label_col)
        pdf = aggregate_binary(work, patient_col, score_col, label_col="_y", rule=patient_rule)
        py = pdf["_y"].to_numpy().astype(bool)
        metrics["n_patients"] = int(len(pdf))
        metrics["patient_aggregation"] = patient_rule
        try:
            need_two_per_class(py, "per patient")
        except ValueError as exc:
            top_notes.append(f"Per-patient evaluation skipped: {exc}.")
            has_patients = False
    if has_patients:
        const = [c for c in strata if df.groupby(patient_col)[c].nunique(dropna=False).max() <= 1]
        if const:
            pdf = pdf.merge(df.groupby(patient_col, sort=True)[const].first().reset_index(), on=patient_col)
        pm, pf, pnotes = _evaluate_level(
            py, pdf["score"].to_numpy(), name="per patient", unit="patients", groups=None, threshold=threshold,
            threshold_source=threshold_source, n_boot=n_boot, seed=seed, class_names=class_names,
        )
        pnotes.insert(
            0, f"Patient score = {patient_rule} of image scores; a patient's label must be the same on all its images."
        )
        skipped = [c for c in strata if c not in const]
        if skipped:
            pnotes.append(f"Strata {skipped} vary within patients and are shown per image only.")
        p_tables, pm["strata"] = strata_tables(pdf, const, "_y", "score")
        pm["aggregation"] = patient_rule
        metrics["patient"] = pm
        levels.append({"key": "patient", "heading": "Per-patient evaluation", "metrics": pm, "rows": metric_rows(pm),
                       "figures": pf, "notes": pnotes, "strata": p_tables})

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics["figures"] = _write_figures(out, levels, unit)
    metrics = to_jsonable(metrics)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2))
    html = render_html(
        "report.html",
        title=title,
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        levels=levels,
        notes=top_notes,
        level_sel=sel,
        n_images=len(df),
        n_patients=metrics.get("n_patients"),
        positive=pos_name,
        label_col=label_col,
        score_col=score_col,
        n_boot=n_boot,
        seed=seed,
    )
    html_path = out / "report.html"
    html_path.write_text(html, encoding="utf-8")
    return ReportResult(out_dir=out, html_path=html_path, metrics_path=metrics_path, metrics=metrics)
