"""Several models on the same cases: one ROC and one decision curve, paired DeLong tests for every pair.

Input: one table with a label column, optionally ``patient_id``, and one score column per model
(higher = positive). Per image and per patient (patient score = ``mean`` or ``max`` of its image
scores, as stated in the output). Positive and negative labels are explicit and other labels are
excluded and counted, as in the evaluation report; rows where any model has no score are left
out of every model (paired tests need the same cases) and counted per model.
"""

from __future__ import annotations

import base64
import datetime as _dt
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .aggregate import BinaryRule, aggregate_binary, require_one_label_per_patient
from .decision import net_benefit
from .delong import auc_delong, delong_paired_test
from .levels import select_levels
from .plots import RocSeries, decision_figure_models, fig_to_png, roc_figure
from .report import ReportResult, need_two_per_class, small_n_warning, to_jsonable
from .report_html import render_html
from .roc import roc_curve, youden_threshold
from .scores import read_scores, row_places


PLACE_PREFIX = "_place_"  # join_predictions: column "_place_<model>" = where each score came from ("b.csv line 7")


@dataclass(frozen=True)
class CompareResult(ReportResult):
    """Files written by :func:`compare_models` (``html_path`` is ``compare.html``) plus its PNG plots."""

    figures: dict[str, Path]


def _level(y: np.ndarray, scores: dict[str, np.ndarray], unit: str) -> dict[str, Any]:
    """AUCs with DeLong CIs, Youden cut-offs (chosen on these data) and paired DeLong tests of every pair."""
    models = []
    for name, s in scores.items():
        a, yd = auc_delong(y, s), youden_threshold(y, s)
        models.append({"name": name, "auc": a.auc, "auc_ci": [a.ci_low, a.ci_high], "auc_se": a.se,
                       "youden": {"threshold": yd.threshold, "sensitivity": yd.sensitivity,
                                  "specificity": yd.specificity, "chosen_on_these_data": True}})
    pairs = []
    for a, b in itertools.combinations(scores, 2):
        t = delong_paired_test(y, scores[a], scores[b])
        pairs.append({"model_1": a, "model_2": b, "auc_1": t.auc1, "auc_2": t.auc2, "auc_diff": t.diff,
                      "auc_diff_ci": [t.diff_ci_low, t.diff_ci_high], "z": t.z, "p": t.p})
    warning = small_n_warning(int(y.sum()), int((~y).sum()), unit)
    return {"n": int(y.size), "n_pos": int(y.sum()), "n_neg": int((~y).sum()), "models": models,
            "paired_delong": pairs, "p_adjustment": "none (each pair tested on its own)",
            "warnings": [warning] if warning else []}


def _figures(y: np.ndarray, scores: dict[str, np.ndarray], name: str) -> tuple[dict[str, bytes], list[str]]:
    series = [RocSeries(m, roc_curve(y, s), auc_delong(y, s)) for m, s in scores.items()]
    figs = {"roc": fig_to_png(roc_figure(series, title=f"ROC — {name}"))}
    if all(np.all((s >= 0) & (s <= 1)) for s in scores.values()):
        curves = [(m, net_benefit(y, s)) for m, s in scores.items()]
        figs["decision"] = fig_to_png(decision_figure_models(curves, title=f"Decision curve — {name}"))
        return figs, []
    return figs, ["Some scores are not probabilities in [0, 1]: no decision curve."]


def compare_models(
    table: pd.DataFrame,
    score_cols: Sequence[str],
    out_dir: str | Path,
    *,
    label_col: str = "label",
    positive: Any = 1,
    negative: Any = None,
    patient_col: str | None = "patient_id",
    patient_rule: BinaryRule = "mean",
    title: str = "lesiondx model comparison",
    notes: Sequence[str] = (),
) -> CompareResult:
    """Write ``compare.html``, ``metrics.json`` and ``roc_<level>.png`` / ``decision_<level>.png``."""
    cols = list(dict.fromkeys(score_cols))
    if len(cols) < 2:
        raise ValueError("give at least two score columns to compare")
    missing = [c for c in [label_col, *cols] if c not in table.columns]
    if missing:
        raise ValueError(f"table lacks column(s) {missing}; has {list(table.columns)}")
    # empty cells missing, 83% read as 0.83, text an error naming the row's file line (PLACE_PREFIX: joined tables)
    read = [read_scores(table[c], c, table[PLACE_PREFIX + c].tolist() if PLACE_PREFIX + c in table.columns else None)
            for c in cols]
    sel = select_levels(table[label_col], positive, negative)
    values = {r.name: r.values[sel.keep] for r in read}
    df = table[sel.keep].reset_index(drop=True).assign(**values)
    y = sel.y
    absent = {c: int(np.isnan(v).sum()) for c, v in values.items() if np.isnan(v).any()}
    complete = np.logical_and.reduce([~np.isnan(v) for v in values.values()])
    all_notes = list(notes) + [f"{r.note[0].upper()}{r.note[1:]}." for r in read if r.note]
    if sel.excluded:
        all_notes.append(f"Excluded (neither positive nor negative): {sel.excluded_text}.")
    if absent:
        all_notes.append(f"Left out of every model (no score from: "
                         f"{', '.join(f'{c} ({n})' for c, n in absent.items())}): {int((~complete).sum())} rows.")
    df, y = df[complete].reset_index(drop=True), y[complete]
    scores = {c: values[c][complete] for c in cols}
    need_two_per_class(y, "per image")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {"title": title, "levels": sel.to_dict(), "models": cols, "label_col": label_col,
                               "missing_scores": absent, "n_rows_left_out": int((~complete).sum()),
                               "notes": all_notes, "image": _level(y, scores, "images"), "patient": None}
    level_figs = {"image": _figures(y, scores, "per image")}
    if patient_col and patient_col not in df.columns:
        all_notes.append(f"No {patient_col!r} column: per-image comparison only.")
    if patient_col and patient_col in df.columns:
        require_one_label_per_patient(df.assign(_y=y.astype(int)), patient_col, "_y", label_col, "comparison")
        agg = [aggregate_binary(df.assign(_y=y.astype(int)), patient_col, c, label_col="_y", rule=patient_rule)
               for c in cols]
        py = agg[0]["_y"].to_numpy().astype(bool)
        pscores = {c: a["score"].to_numpy(dtype=float) for c, a in zip(cols, agg)}
        try:
            need_two_per_class(py, "per patient")
        except ValueError as exc:
            all_notes.append(f"Per-patient comparison skipped: {exc}.")
        else:
            metrics["patient"] = {**_level(py, pscores, "patients"), "aggregation": patient_rule,
                                  "aggregation_text": f"patient score = {patient_rule} of its image scores"}
            level_figs["patient"] = _figures(py, pscores, f"per patient ({patient_rule} of image scores)")
    figures: dict[str, Path] = {}
    sections = []
    for level, (figs, fig_notes) in level_figs.items():
        for kind, png in figs.items():
            figures[f"{kind}_{level}"] = out / f"{kind}_{level}.png"
            figures[f"{kind}_{level}"].write_bytes(png)
        sections.append({"key": level, "metrics": metrics[level], "notes": fig_notes,
                         "heading": "Per image" if level == "image"
                         else f"Per patient ({patient_rule} of image scores)",
                         "figures": {k: base64.b64encode(v).decode("ascii") for k, v in figs.items()}})
    metrics["figures"] = {k: p.name for k, p in figures.items()}
    metrics = to_jsonable(metrics)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2))
    html = render_html("compare.html", title=title, generated=_dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
                       sections=sections, sel=sel, notes=all_notes, models=cols, label_col=label_col)
    html_path = out / "compare.html"
    html_path.write_text(html, encoding="utf-8")
    return CompareResult(out_dir=out, html_path=html_path, metrics_path=metrics_path, metrics=metrics, figures=figures)


def comparison_lines(metrics: dict[str, Any]) -> list[str]:
    """One screen of text: AUC per model and the paired tests, per image and per patient."""
    lv = metrics["levels"]
    excluded = ", ".join(f"{k} ({v})" for k, v in lv["excluded"].items()) or "none"
    lines = [metrics["title"],
             f"positive: {', '.join(lv['positive'])}   negative: {', '.join(lv['negative'])}   excluded: {excluded}"]
    lines += [f"note: {n}" for n in metrics["notes"] if not n.startswith("Excluded")]
    for key in ("image", "patient"):
        m = metrics.get(key)
        if not m:
            continue
        head = "per image" if key == "image" else f"per patient ({m['aggregation']} of image scores)"
        lines.append(f"{head}: n {m['n']} ({m['n_pos']} positive / {m['n_neg']} negative)")
        for r in m["models"]:
            lines.append(f"  {r['name']}: AUC {r['auc']:.3f} ({r['auc_ci'][0]:.3f}–{r['auc_ci'][1]:.3f}, DeLong)")
        for t in m["paired_delong"]:
            lo, hi = t["auc_diff_ci"]
            lines.append(f"  {t['model_1']} − {t['model_2']}: ΔAUC {t['auc_diff']:+.3f} "
                         f"({lo:+.3f} to {hi:+.3f}), p = {t['p']:.3g} (paired DeLong)")
        lines += [f"  warning: {w}" for w in m["warnings"]]
    return lines


def _model_names(paths: Sequence[Path]) -> list[str]:
    for pick in (lambda p: p.parent.name, lambda p: p.stem, lambda p: str(p)):
        names = [pick(Path(p)) or Path(p).stem for p in paths]
        if len(set(names)) == len(names):
            return names
    return [f"model{i + 1}" for i in range(len(paths))]


def join_predictions(
    paths: Sequence[Path], tables: Sequence[pd.DataFrame], scores: Sequence[str], names: Sequence[str], label_col: str
) -> tuple[pd.DataFrame, list[str], list[str]]:
    """One table with one score column per model, the model names and notes on rows left out.

    One table: ``scores`` are its model columns (``names`` renames them). Several tables: one
    score column each (``scores`` empty → ``score``, one name for all, or one per table), joined
    on ``image_id`` (rows not in every table are left out and counted); labels must agree.
    """
    if len(tables) == 1:
        if len(scores) < 2:
            raise ValueError(f"{paths[0]}: give at least two --score columns to compare")
        if names and len(names) != len(scores):
            raise ValueError("give one --name per --score column")
        missing = [c for c in scores if c not in tables[0].columns]
        if missing:
            raise ValueError(f"{paths[0]}: column(s) {missing} not found (columns: {', '.join(tables[0].columns)})")
        table = tables[0].rename(columns=dict(zip(scores, names))) if names else tables[0]
        return table, list(names or scores), []
    cols = list(scores) or ["score"]
    if len(cols) == 1:
        cols *= len(tables)
    if len(cols) != len(tables):
        raise ValueError(f"give one --score for all CSVs or one per CSV ({len(tables)}), not {len(cols)}")
    model = list(names) or _model_names(paths)
    if len(model) != len(tables) or len(set(model)) != len(model):
        raise ValueError("give one distinct --name per CSV")
    joined: pd.DataFrame | None = None
    for path, t, col, m in zip(paths, tables, cols, model):
        need = [c for c in ("image_id", label_col, col) if c not in t.columns]
        if need:
            raise ValueError(f"{path}: column(s) {need} not found (columns: {', '.join(t.columns)})")
        if t["image_id"].duplicated().any():
            raise ValueError(f"{path}: image_id {t['image_id'][t['image_id'].duplicated()].iloc[0]!r} repeats")
        keep = ["image_id", label_col, col] + (["patient_id"] if joined is None and "patient_id" in t.columns else [])
        places = [f"{Path(path).name} {w}" for w in row_places(t[col])]
        part = t[keep].rename(columns={col: m, label_col: f"_label_{m}"}).assign(**{PLACE_PREFIX + m: places})
        joined = part if joined is None else joined.merge(part, on="image_id", how="inner")
    assert joined is not None
    labels = joined[[f"_label_{m}" for m in model]].astype(str)
    differ = labels.nunique(axis=1) > 1
    if differ.any():
        raise ValueError(f"labels differ between the CSVs for {int(differ.sum())} image(s), "
                         f"e.g. {joined.loc[differ, 'image_id'].iloc[0]!r}")
    joined = joined.rename(columns={f"_label_{model[0]}": label_col}).drop(columns=[f"_label_{m}" for m in model[1:]])
    lost = max(len(t) for t in tables) - len(joined)
    notes = [f"Joined on image_id: {len(joined)} images in every CSV; {lost} row(s) of the largest CSV left out."] \
        if lost else []
    return joined, model, notes
