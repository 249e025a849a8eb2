"""Self-contained HTML evaluation report and metrics.json from a prediction table.

Input: one row per image with ``image_id, patient_id, label, score`` (+ optional stratum
columns). The report evaluates images and patients (image scores aggregated per patient,
mean probability by default): ROC with DeLong CI and a patient-level bootstrap band,
metrics at the Youden cut-off (or a fixed threshold chosen elsewhere), confusion matrix,
calibration, decision curve and stratified AUC tables. Figures are embedded as base64 PNG,
so ``report.html`` opens offline.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ._validate import binarize_labels
from .aggregate import BinaryRule, aggregate_binary
from .binary import ProportionCI, metrics_at_threshold
from .bootstrap import bootstrap_auc, bootstrap_roc_band
from .calibration import calibration_curve, hosmer_lemeshow
from .decision import net_benefit
from .delong import auc_delong
from .plots import RocSeries, calibration_figure, confusion_figure, decision_figure, fig_to_base64, roc_figure
from .roc import YoudenResult, roc_curve, youden_threshold
from .stratify import stratified_auc_table

TEMPLATE_DIR = Path(__file__).parent / "templates"


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


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _prop(p: ProportionCI) -> dict[str, Any]:
    return {"value": p.estimate, "ci": [p.ci_low, p.ci_high], "k": p.k, "n": p.n}


def _evaluate_level(
    y: np.ndarray,
    s: np.ndarray,
    *,
    name: str,
    groups: np.ndarray | None,
    threshold: float | None,
    n_boot: int,
    seed: int,
    class_names: tuple[str, str],
) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Metrics dict, base64 figures and notes for one level (images or patients)."""
    if y.sum() < 2 or (~y).sum() < 2:
        raise ValueError(
            f"{name}: need at least 2 positive and 2 negative cases, got {int(y.sum())} and {int((~y).sum())}"
        )
    notes: list[str] = []
    auc = auc_delong(y, s)
    boot = bootstrap_auc(y, s, groups=groups, n_boot=n_boot, seed=seed)
    band = bootstrap_roc_band(y, s, groups=groups, n_boot=n_boot, seed=seed)
    youden = youden_threshold(y, s)
    thr = youden.threshold if threshold is None else float(threshold)
    m = metrics_at_threshold(y, s, thr)
    cutoff = YoudenResult(thr, m.sensitivity.estimate, m.specificity.estimate, float("nan"), 1)
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
        "youden": {"threshold": youden.threshold, "sensitivity": youden.sensitivity, "specificity": youden.specificity},
    }
    for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
        p = getattr(m, key)
        metrics[key] = p.estimate
        metrics[f"{key}_ci"] = [p.ci_low, p.ci_high]
    metrics["f1"] = m.f1
    metrics["confusion"] = {"tp": m.confusion.tp, "fp": m.confusion.fp, "tn": m.confusion.tn, "fn": m.confusion.fn}
    band_note = "patients resampled" if groups is not None else "cases resampled within class"
    figures = {
        "roc": fig_to_base64(
            roc_figure([RocSeries("model", roc_curve(y, s), auc, band, cutoff)], title=f"ROC — {name} ({band_note})")
        ),
        "confusion": fig_to_base64(
            confusion_figure(m.confusion, class_names, title=f"Confusion matrix at {thr:.3g} — {name}")
        ),
    }
    if np.all((s >= 0) & (s <= 1)):
        cal = calibration_curve(y, s, n_bins=10)
        metrics["brier"] = cal.brier
        figures["calibration"] = fig_to_base64(calibration_figure(cal, title=f"Calibration — {name}"))
        if y.size >= 10:
            hl = hosmer_lemeshow(y, s)
            metrics["hosmer_lemeshow"] = {"statistic": hl.statistic, "df": hl.df, "p": hl.p}
        dc = net_benefit(y, s)
        metrics["decision_curve"] = {"thresholds": dc.thresholds, "model": dc.model, "treat_all": dc.treat_all}
        figures["decision"] = fig_to_base64(decision_figure(dc, title=f"Decision curve — {name}"))
    else:
        notes.append("Scores are not probabilities in [0, 1]: calibration and decision curves are skipped.")
    return metrics, figures, notes


def _metric_rows(m: dict[str, Any]) -> list[dict[str, str]]:
    rows = [
        {
            "name": "AUC (DeLong 95% CI)",
            "value": _fmt(m["auc"]),
            "ci": f"{_fmt(m['auc_ci'][0])} – {_fmt(m['auc_ci'][1])}",
        },
        {
            "name": "AUC (bootstrap 95% CI)",
            "value": _fmt(m["auc"]),
            "ci": f"{_fmt(m['auc_bootstrap_ci'][0])} – {_fmt(m['auc_bootstrap_ci'][1])}",
        },
        {"name": f"Threshold ({m['threshold_method']})", "value": f"{m['threshold']:.4g}", "ci": ""},
    ]
    names = {
        "accuracy": "Accuracy",
        "sensitivity": "Sensitivity",
        "specificity": "Specificity",
        "ppv": "PPV (precision)",
        "npv": "NPV",
    }
    for key, label in names.items():
        rows.append(
            {
                "name": f"{label} (Wilson 95% CI)",
                "value": _fmt(m[key]),
                "ci": f"{_fmt(m[key + '_ci'][0])} – {_fmt(m[key + '_ci'][1])}",
            }
        )
    rows.append({"name": "F1", "value": _fmt(m["f1"]), "ci": ""})
    if "brier" in m:
        rows.append({"name": "Brier score", "value": _fmt(m["brier"]), "ci": ""})
    if "hosmer_lemeshow" in m:
        hl = m["hosmer_lemeshow"]
        rows.append(
            {"name": "Hosmer–Lemeshow", "value": f"χ²={hl['statistic']:.2f}, df={hl['df']}", "ci": f"p = {hl['p']:.3g}"}
        )
    return rows


def _strata_tables(df: pd.DataFrame, strata: Sequence[str], label_col: str, score_col: str, positive: Any):
    tables, records = [], {}
    for col in strata:
        t = stratified_auc_table(df, col, label_col=label_col, score_col=score_col, positive=positive)
        records[col] = t.drop(columns="stratum").to_dict("records")
        rows = [
            {
                "level": r["level"],
                "n": r["n"],
                "n_pos": r["n_pos"],
                "n_neg": r["n_neg"],
                "auc": _fmt(r["auc"]),
                "ci": f"{_fmt(r['ci_low'])} – {_fmt(r['ci_high'])}",
                "p": _fmt(r["p"], 3),
            }
            for r in records[col]
        ]
        tables.append({"column": col, "rows": rows})
    return tables, records


def write_report(
    predictions: pd.DataFrame,
    out_dir: str | Path,
    *,
    label_col: str = "label",
    positive: Any = 1,
    score_col: str = "score",
    patient_col: str | None = "patient_id",
    strata: Sequence[str] = (),
    title: str = "lesiondx evaluation report",
    threshold: float | None = None,
    patient_rule: BinaryRule = "mean",
    n_boot: int = 500,
    seed: int = 0,
) -> ReportResult:
    """Evaluate ``predictions`` per image and per patient; write ``report.html`` and ``metrics.json``.

    ``positive`` names the positive value of ``label_col`` (strings or 0/1). ``threshold``
    fixes the cut-off (e.g. chosen on a validation set); by default the Youden cut-off of each
    level is used. Patient labels must be constant within a patient. Without ``patient_col``
    (or when it is absent from the table) the patient section is omitted.
    """
    df = predictions.reset_index(drop=True)
    need = [label_col, score_col, *strata] + ([patient_col] if patient_col and patient_col in df.columns else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"prediction table lacks column(s) {missing}; has {list(df.columns)}")
    scores = pd.to_numeric(df[score_col], errors="coerce")
    if scores.isna().any():
        raise ValueError(f"column {score_col!r} has {int(scores.isna().sum())} missing or non-numeric value(s)")
    df[score_col] = scores.astype(float)
    y = binarize_labels(df[label_col], positive)
    others = sorted({str(v) for v in df.loc[~y, label_col].unique()})
    class_names = (others[0] if len(others) == 1 else f"not {positive}", str(positive))
    has_patients = bool(patient_col) and patient_col in df.columns
    groups = df[patient_col].astype(str).to_numpy() if has_patients else None

    img_m, img_f, img_notes = _evaluate_level(
        y,
        df[score_col].to_numpy(),
        name="per image",
        groups=groups,
        threshold=threshold,
        n_boot=n_boot,
        seed=seed,
        class_names=class_names,
    )
    img_tables, img_m["strata"] = _strata_tables(df, strata, label_col, score_col, positive)
    levels = [
        {
            "key": "image",
            "heading": "Per-image evaluation",
            "metrics": img_m,
            "rows": _metric_rows(img_m),
            "figures": img_f,
            "notes": img_notes,
            "strata": img_tables,
        }
    ]
    metrics: dict[str, Any] = {
        "title": title,
        "positive": str(positive),
        "label_col": label_col,
        "score_col": score_col,
        "n_images": int(len(df)),
        "image": img_m,
        "patient": None,
    }
    if has_patients:
        pdf = aggregate_binary(df.assign(_y=y.astype(int)), patient_col, score_col, label_col="_y", rule=patient_rule)
        const = [c for c in strata if df.groupby(patient_col)[c].nunique(dropna=False).max() <= 1]
        if const:
            pdf = pdf.merge(df.groupby(patient_col, sort=True)[const].first().reset_index(), on=patient_col)
        pm, pf, pnotes = _evaluate_level(
            pdf["_y"].to_numpy().astype(bool),
            pdf["score"].to_numpy(),
            name="per patient",
            groups=None,
            threshold=threshold,
            n_boot=n_boot,
            seed=seed,
            class_names=class_names,
        )
        pnotes.insert(
            0, f"Patient score = {patient_rule} of image scores; a patient's label must be the same on all its images."
        )
        skipped = [c for c in strata if c not in const]
        if skipped:
            pnotes.append(f"Strata {skipped} vary within patients and are shown per image only.")
        p_tables, pm["strata"] = _strata_tables(pdf, const, "_y", "score", 1)
        pm["aggregation"] = patient_rule
        metrics["n_patients"] = int(len(pdf))
        metrics["patient"] = pm
        levels.append(
            {
                "key": "patient",
                "heading": "Per-patient evaluation",
                "metrics": pm,
                "rows": _metric_rows(pm),
                "figures": pf,
                "notes": pnotes,
                "strata": p_tables,
            }
        )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = to_jsonable(metrics)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2))
    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html"]))
    html = env.get_template("report.html").render(
        title=title,
        generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        levels=levels,
        n_images=len(df),
        n_patients=metrics.get("n_patients"),
        positive=str(positive),
        label_col=label_col,
        score_col=score_col,
        n_boot=n_boot,
        seed=seed,
    )
    html_path = out / "report.html"
    html_path.write_text(html, encoding="utf-8")
    return ReportResult(out_dir=out, html_path=html_path, metrics_path=metrics_path, metrics=metrics)
