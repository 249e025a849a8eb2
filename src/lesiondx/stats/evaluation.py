"""One code path from a predictions CSV to the evaluation report, shared by ``evaluate`` and ``report``.

``lesiondx evaluate`` writes ``predictions.csv`` and, beside it, ``predictions.settings.json``
(positive and negative labels, the model's fixed threshold and where it came from, patient
aggregation, notes), then calls :func:`report_from_csv` — the function ``lesiondx report``
calls. ``report`` reads the settings file when it is there, so both give the same figures on
the same file; options given to ``report`` override it. :func:`summary_lines` is the
one-screen terminal summary of a report's metrics.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .report import ReportResult, write_report
from .report_html import fmt, fmt_ci, fmt_threshold

SETTINGS_SUFFIX = ".settings.json"


@dataclass(frozen=True)
class EvalSettings:
    """How a predictions table is evaluated (every field is written to the settings file)."""

    positive: tuple[str, ...] = ("1",)
    negative: tuple[str, ...] = ()  # empty: the one other label
    label_col: str = "label"
    score_col: str = "score"
    patient_col: str | None = "patient_id"
    patient_rule: str = "mean"
    threshold: float | None = None  # fixed before the evaluation; None: Youden chosen on these data
    threshold_source: str = "given by the user"
    title: str = "lesiondx evaluation report"
    notes: tuple[str, ...] = ()
    strata: tuple[str, ...] = ()
    n_boot: int = 500
    seed: int = 0
    unit: str = "image"  # what one row is: image, slice, lesion

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalSettings:
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown}")
        return cls(**{k: tuple(map(str, v)) if isinstance(v, list) else v for k, v in data.items()})


def settings_path(csv_path: str | Path) -> Path:
    """``predictions.csv`` → ``predictions.settings.json``."""
    p = Path(csv_path)
    return p.with_name(p.stem + SETTINGS_SUFFIX)


def read_settings(csv_path: str | Path) -> EvalSettings | None:
    """The settings written beside ``csv_path`` by ``evaluate``, or None when there are none."""
    path = settings_path(csv_path)
    if not path.is_file():
        return None
    try:
        return EvalSettings.from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a settings file ({exc})") from None


def write_predictions(table: pd.DataFrame, csv_path: str | Path, settings: EvalSettings) -> Path:
    """Write the predictions CSV and its settings file; returns the CSV path."""
    path = Path(csv_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    settings_path(path).write_text(json.dumps(settings.to_dict(), indent=2))
    return path


def report_from_csv(csv_path: str | Path, out_dir: str | Path, settings: EvalSettings) -> ReportResult:
    """Read ``csv_path`` and write the report with ``settings`` (``evaluate`` and ``report`` both end here)."""
    from lesiondx.data.tables import read_table

    path = Path(csv_path)
    table = read_table(path)  # TableError (a ValueError) names the file
    if table.empty:
        raise ValueError(f"{path}: no rows (a header only)")
    return write_report(
        table, out_dir, label_col=settings.label_col, positive=list(settings.positive),
        negative=list(settings.negative) or None, score_col=settings.score_col, patient_col=settings.patient_col,
        strata=list(settings.strata), title=settings.title, threshold=settings.threshold,
        threshold_source=settings.threshold_source, patient_rule=settings.patient_rule,  # type: ignore[arg-type]
        n_boot=settings.n_boot, seed=settings.seed, notes=list(settings.notes), unit=settings.unit,
    )


def merge_settings(base: EvalSettings | None, **overrides: Any) -> EvalSettings:
    """``base`` (or the defaults) with every override that is not None; a new ``threshold`` also
    replaces ``threshold_source`` unless one is given."""
    given = {k: v for k, v in overrides.items() if v is not None}
    for key in ("positive", "negative", "strata", "notes"):
        if key in given:
            value = given[key]
            given[key] = (str(value),) if isinstance(value, (str, int, float)) else tuple(str(v) for v in value)
    if "threshold" in given and "threshold_source" not in given:
        given["threshold_source"] = "given with --threshold"
    return replace(base or EvalSettings(), **given)


def _level_lines(name: str, m: dict[str, Any]) -> list[str]:
    thr_kind = ("chosen on these data (Youden, optimistic)" if m["threshold_chosen_on_these_data"]
                else "fixed before")
    lines = [
        f"{name}: n {m['n']} ({m['n_pos']} positive / {m['n_neg']} negative)   "
        f"AUC {fmt(m['auc'])} (95% CI {fmt_ci(m['auc_ci'])}, DeLong)",
        f"  at threshold {fmt_threshold(m['threshold'])}, {thr_kind}: sensitivity {fmt(m['sensitivity'])} "
        f"({fmt_ci(m['sensitivity_ci'])}), specificity {fmt(m['specificity'])} ({fmt_ci(m['specificity_ci'])})",
    ]
    if not m["threshold_chosen_on_these_data"]:
        yd = m["youden"]
        lines.append(f"  Youden threshold on these data {fmt_threshold(yd['threshold'])} (optimistic): sensitivity "
                     f"{fmt(yd['sensitivity'])}, specificity {fmt(yd['specificity'])}")
    cal = m.get("calibration") or {}
    if cal.get("slope") is not None:
        lines.append(f"  calibration slope {fmt(cal['slope'], 2)} ({fmt_ci(cal['slope_ci'], 2)}), "
                     f"intercept {fmt(cal['intercept'], 2)} ({fmt_ci(cal['intercept_ci'], 2)})")
    elif cal:
        lines.append(f"  {cal['note']}")
    lines += [f"  warning: {w}" for w in m.get("warnings", [])]
    return lines


def summary_lines(metrics: dict[str, Any]) -> list[str]:
    """One screen of text: levels, counts, AUC with CI, operating point(s), calibration, warnings."""
    lv = metrics["levels"]
    excluded = ", ".join(f"{k} ({v})" for k, v in lv["excluded"].items()) or "none"
    lines = [metrics.get("title", "evaluation"),
             f"positive: {', '.join(lv['positive'])}   negative: {', '.join(lv['negative'])}   excluded: {excluded}"]
    lines += [f"note: {n}" for n in metrics.get("notes", []) if not n.startswith("Excluded")]
    unit = metrics.get("unit", "image")
    lines += _level_lines(f"per {unit}", metrics["image"])
    if metrics.get("patient"):
        lines += _level_lines(f"per patient ({metrics['patient']['aggregation']} of {unit} scores)",
                              metrics["patient"])
    return lines
