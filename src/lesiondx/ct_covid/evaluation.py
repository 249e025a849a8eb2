"""Evaluation of a labelled CT-MD-layout folder: per-slice and per-patient tables and metrics."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesiondx.data import Manifest
from lesiondx.io import ImageReadError, read_image
from lesiondx.progress import track
from lesiondx.stats import auc_delong, binary_metrics
from lesiondx.stats.evaluation import EvalSettings, report_from_csv, summary_lines, write_predictions
from lesiondx.stats.report import small_n_warning, to_jsonable
from lesiondx.stats.report_html import fmt, fmt_ci

from .config import CovidConfig
from .model import LoadedModel
from .pipeline import SeriesResult, analyse_series

METRIC_KEYS = ("accuracy", "sensitivity", "specificity", "ppv", "npv")


def read_patient_slices(rows: pd.DataFrame) -> tuple[np.ndarray, bool, tuple[float, ...] | None]:
    """Stack one patient's slice files (rows already ordered by ``slice_index``);
    ``(pixels, is_hu, in-plane spacing in mm or None)``."""
    images = [read_image(path) for path in rows["image"]]
    shapes = {im.pixels.shape for im in images}
    if len(shapes) != 1 or images[0].pixels.ndim != 2:
        raise ImageReadError(Path(rows["image"].iloc[0]).parent, f"slices of one patient differ in shape or are not 2-D: {sorted(shapes)}")
    spacing = images[0].spacing[-2:] if images[0].spacing is not None else None
    return np.stack([im.pixels for im in images]), all(im.is_hu for im in images), spacing


def patient_truth(label: str, config: CovidConfig) -> int:
    """1 (pneumonia) when the label is one of ``config.positive_labels``, else 0 (every other label)."""
    return int(config.is_positive(label))


def run_folder_checks(manifest: Manifest) -> str:
    """The per-slice truth column of a CT-MD-layout folder; ``ValueError`` naming labels.csv when it has no
    rows, or lacks ``slice_index`` / ``patient_id`` on a row, or has no truth column."""
    frame = manifest.frame
    if frame.empty:
        raise ValueError(f"{manifest.root / 'labels.csv'}: labels.csv has no rows")
    for column in ("slice_index", "patient_id"):
        if column not in frame.columns or frame[column].isna().any():
            raise ValueError(f"{manifest.root / 'labels.csv'}: column {column!r} is required for every row (CT-MD layout)")
    truth_col = manifest.layout.slice_truth or "infection"
    if truth_col not in frame.columns:
        raise ValueError(f"{manifest.root / 'labels.csv'}: no per-slice truth column {truth_col!r}")
    return truth_col


def run_folder(manifest: Manifest, model: LoadedModel) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Predict every patient of ``manifest``; ``(slice table, patient table, summed stage seconds)``."""
    frame = manifest.frame
    truth_col = run_folder_checks(manifest)
    slice_rows, patient_rows, timings = [], [], {}
    for patient, rows in track(list(frame.groupby("patient_id", sort=True)), "ct-covid patients"):
        rows = rows.sort_values("slice_index")
        if rows["slice_index"].duplicated().any():
            raise ValueError(f"{manifest.root / 'labels.csv'}: patient {patient} repeats a slice_index")
        pixels, is_hu, spacing = read_patient_slices(rows)
        result: SeriesResult = analyse_series(pixels, model, is_hu=is_hu, spacing=spacing,
                                              positions=rows["slice_index"].astype(int).tolist())
        for key, value in result.timings.items():
            timings[key] = timings.get(key, 0.0) + value
        for (_, row), s in zip(rows.iterrows(), result.slices):
            slice_rows.append({"image_id": row["image_id"], "patient_id": patient, "slice_index": int(row["slice_index"]),
                               "truth": int(row[truth_col]), "score": s.score, "n_boxes": len(s.boxes),
                               "quadrants": ";".join(sorted(set(s.quadrants)))})
        labels = rows["label"].astype(str).unique()
        if len(labels) != 1:
            raise ValueError(f"{manifest.root / 'labels.csv'}: patient {patient} has several labels {list(labels)}")
        p = result.patient
        patient_rows.append({"patient_id": patient, "label": labels[0], "truth": patient_truth(labels[0], model.config),
                             "decision": p.decision, "score": p.score, "quadrant": p.quadrant,
                             "run_length": p.run_length, "n_slices": len(rows)})
    return pd.DataFrame(slice_rows), pd.DataFrame(patient_rows), timings


def _auc(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos < 2 or n_neg < 2:
        return {"auc": None, "auc_ci": None,
                "auc_note": f"AUC undefined: needs ≥ 2 positive and ≥ 2 negative cases, got {n_pos} and {n_neg}"}
    a = auc_delong(y, s)
    return {"auc": a.auc, "auc_ci": [a.ci_low, a.ci_high], "auc_ci_method": "delong"}


def _decisions(y: np.ndarray, decided: np.ndarray) -> dict[str, Any]:
    m = binary_metrics(y, decided)
    out: dict[str, Any] = {}
    for key in METRIC_KEYS:
        p = getattr(m, key)
        out[key] = p.estimate
        out[f"{key}_ci"] = [p.ci_low, p.ci_high]
    out["confusion"] = {"tp": m.confusion.tp, "fp": m.confusion.fp, "tn": m.confusion.tn, "fn": m.confusion.fn}
    return out


def level_metrics(y: np.ndarray, s: np.ndarray, decided: np.ndarray, threshold: float | None) -> dict[str, Any]:
    """AUC (DeLong 95% CI, or null with a reason) and decision metrics with Wilson 95% CIs."""
    y = np.asarray(y).astype(bool)
    out = {"n": int(y.size), "n_pos": int(y.sum()), "n_neg": int((~y).sum()), **_auc(y, np.asarray(s, float))}
    out.update(_decisions(y, np.asarray(decided).astype(bool)))
    out["threshold"] = threshold
    return out


def metrics_and_report(slices: pd.DataFrame, patients: pd.DataFrame, out: Path, *, threshold: float, rule: str,
                       notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """``slice`` and ``patient`` sections (``notes``: exclusions, training overlap, said in both reports); ``predictions.csv`` / ``patients.csv`` with their settings files
    and the stats HTML reports under ``out/report`` and ``out/patient_report``, through the code path
    ``lesiondx report`` takes on those files; ``summary``: terminal lines."""
    y, s = slices["truth"].to_numpy(bool), slices["score"].to_numpy(float)
    slice_m = level_metrics(y, s, s >= threshold, threshold)
    slice_m["threshold_method"] = "fixed (config prob_threshold, chosen before seeing this data)"
    slice_m["note"] = "slices of one patient are correlated; DeLong CI treats them as independent"
    py = patients["truth"].to_numpy(bool)
    patient_m = level_metrics(py, patients["score"].to_numpy(float), patients["decision"].to_numpy(bool), None)
    patient_m["decision_rule"] = rule
    source = "the model's prob_threshold (config), chosen before seeing this data"
    base = EvalSettings(positive=("1",), negative=("0",), label_col="truth", patient_col=None, threshold=threshold,
                        threshold_source=source, unit="slice")
    per = {"report": (slices, "predictions.csv", replace(base, title="ct-covid evaluation — per slice", notes=(
               "Slices of one patient are correlated; the DeLong CI treats them as independent.", *notes))),
           "patient_report": (patients, "patients.csv", replace(base, title="ct-covid evaluation — per patient", unit="patient", notes=(
               f"Patient score from the series rule; the decision rule: {rule}.", *notes)))}
    reports: dict[str, str] = {}
    summary: list[str] = []
    for name, (table, csv_name, settings) in per.items():
        csv = write_predictions(table, out / csv_name, settings)
        try:
            result = report_from_csv(csv, out / name, settings)
            reports[name] = str(result.html_path)
            summary += summary_lines(result.metrics) if name == "report" else []
        except ValueError as exc:
            reports[name] = f"not written: {exc}"
    pm = patient_m
    summary.append(f"per patient, decision rule: n {pm['n']} ({pm['n_pos']} pneumonia / {pm['n_neg']} not): "
                   f"sensitivity {fmt(pm['sensitivity'])} ({fmt_ci(pm['sensitivity_ci'])}), "
                   f"specificity {fmt(pm['specificity'])} ({fmt_ci(pm['specificity_ci'])})")
    warning = small_n_warning(pm["n_pos"], pm["n_neg"], "patients")
    summary += [f"  warning: {warning}"] if warning else []
    summary += [f"{name}: {text}" for name, text in reports.items() if text.startswith("not written")]
    return to_jsonable({"slice": slice_m, "patient": patient_m, "reports": reports, "summary": summary})
