"""Table rows and template rendering for the HTML reports (evaluation report and model comparison)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .stratify import stratified_auc_table

TEMPLATE_DIR = Path(__file__).parent / "templates"


def fmt(x: float | None, digits: int = 3) -> str:
    """``x`` with ``digits`` decimals, or an en dash when missing / not finite."""
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def fmt_ci(ci: Sequence[float | None] | None, digits: int = 3) -> str:
    """``"0.412 – 0.918"`` (or an en dash)."""
    return "–" if not ci else f"{fmt(ci[0], digits)} – {fmt(ci[1], digits)}"


def fmt_threshold(x: float | None, digits: int = 3) -> str:
    """A threshold in score units to ``digits`` significant digits; ``-inf`` (pROC's first threshold, which
    metrics.json stores as null) and ``+inf`` are said in words."""
    if x is None or x == -math.inf:
        return "-inf (every case called positive)"
    if x == math.inf:
        return "+inf (no case called positive)"
    return f"{x:.{digits}g}"


def threshold_label(m: dict[str, Any]) -> str:
    """``"fixed before"`` or ``"chosen on these data (Youden, optimistic)"`` for a level's metrics."""
    return "chosen on these data (Youden, optimistic)" if m["threshold_chosen_on_these_data"] else "fixed before"


def metric_rows(m: dict[str, Any]) -> list[dict[str, str]]:
    """Rows (name, value, ci) of a level's metrics table."""
    rows = [
        {"name": "AUC (DeLong 95% CI)", "value": fmt(m["auc"]), "ci": fmt_ci(m["auc_ci"])},
        {"name": "AUC (bootstrap 95% CI)", "value": fmt(m["auc"]), "ci": fmt_ci(m["auc_bootstrap_ci"])},
        {"name": f"Threshold, {threshold_label(m)}", "value": fmt_threshold(m["threshold"]),
         "ci": m["threshold_source"]},
    ]
    names = {"accuracy": "Accuracy", "sensitivity": "Sensitivity", "specificity": "Specificity",
             "ppv": "PPV (precision)", "npv": "NPV"}
    for key, label in names.items():
        rows.append({"name": f"{label} (Wilson 95% CI)", "value": fmt(m[key]), "ci": fmt_ci(m[key + "_ci"])})
    rows.append({"name": "F1", "value": fmt(m["f1"]), "ci": ""})
    if not m["threshold_chosen_on_these_data"]:
        yd = m["youden"]
        rows.append({"name": "Youden threshold, chosen on these data (optimistic)",
                     "value": fmt_threshold(yd["threshold"]),
                     "ci": f"sensitivity {fmt(yd['sensitivity'])}, specificity {fmt(yd['specificity'])}"})
    if "brier" in m:
        rows.append({"name": "Brier score", "value": fmt(m["brier"]), "ci": ""})
    cal = m.get("calibration")
    if cal:
        if cal.get("slope") is None:
            rows.append({"name": "Calibration slope / intercept", "value": "–", "ci": cal.get("note", "")})
        else:
            rows.append({"name": "Calibration slope (1 = ideal)", "value": fmt(cal["slope"], 2),
                         "ci": fmt_ci(cal["slope_ci"], 2)})
            rows.append({"name": "Calibration intercept (0 = ideal)", "value": fmt(cal["intercept"], 2),
                         "ci": fmt_ci(cal["intercept_ci"], 2)})
    if "hosmer_lemeshow" in m:
        hl = m["hosmer_lemeshow"]
        rows.append(
            {"name": f"Hosmer–Lemeshow ({hl.get('groups', 10)} risk groups)", "value": f"χ²={hl['statistic']:.2f}, df={hl['df']}",
             "ci": f"p = {hl['p']:.3g}"}
        )
    return rows


def strata_tables(df: pd.DataFrame, strata: Sequence[str], y_col: str, score_col: str):
    """HTML rows and JSON records of stratified AUC tables (``y_col`` holds 0/1)."""
    tables, records = [], {}
    for col in strata:
        t = stratified_auc_table(df, col, label_col=y_col, score_col=score_col, positive=1)
        records[col] = t.drop(columns="stratum").to_dict("records")
        rows = [
            {"level": r["level"], "n": r["n"], "n_pos": r["n_pos"], "n_neg": r["n_neg"], "auc": fmt(r["auc"]),
             "ci": f"{fmt(r['ci_low'])} – {fmt(r['ci_high'])}", "p": fmt(r["p"], 3)}
            for r in records[col]
        ]
        tables.append({"column": col, "rows": rows})
    return tables, records


def render_html(template: str, **context: Any) -> str:
    """Render ``templates/<template>`` (autoescaped) with ``fmt`` and ``fmt_ci`` available."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape  # only where a report is written

    env = Environment(loader=FileSystemLoader(TEMPLATE_DIR), autoescape=select_autoescape(["html"]))
    env.globals.update(fmt=fmt, fmt_ci=fmt_ci, fmt_threshold=fmt_threshold, threshold_label=threshold_label)
    return env.get_template(template).render(**context)
