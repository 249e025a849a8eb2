"""One screen of text for ``lesiondx predict`` (the whole result is ``--json``): per frame (us-liver), per patient
(ct-covid) or per finding (ct-liver), with the input gate's flags and caveats in words; and the closing lines of
``train`` and ``evaluate`` (what was written where, and the next step)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

MAX_FINDINGS = 20  # findings listed one per line; the rest are counted


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def _flags(result: dict[str, Any], indent: str = "  ") -> list[str]:
    """The gate's reasons, the out-of-distribution verdict and any caveat, one line each."""
    lines = []
    if result.get("out_of_scope_flag"):
        reasons = list((result.get("gate") or {}).get("reasons") or [])
        ood = result.get("ood") or {}
        if ood.get("out_of_distribution"):
            reasons.append(f"unlike the training images (distance {_num(ood.get('score'), 1)} > {_num(ood.get('threshold'), 1)})")
        lines.append(f"{indent}FLAGGED, outside what the model was validated on: " + ("; ".join(reasons) or "see --json"))
    if result.get("caveat"):
        lines.append(f"{indent}caveat: {result['caveat']}")
    lines += [f"{indent}note: {w}" for w in result.get("input_warnings") or []]
    return lines


def _us_frame(entry: dict[str, Any]) -> list[str]:
    name = Path(str(entry.get("image", "?"))).name + (f" frame {entry['frame']}" if entry.get("frame") is not None else "")
    if entry.get("probability") is None:
        line = f"{name}: {entry.get('label')} (P(lesion) {_num(entry.get('p_lesion'))} < {_num(entry.get('no_lesion_threshold'))})"
    else:
        line = (f"{name}: {entry.get('label')}, P(malignant) {_num(entry.get('probability'))} "
                f"(threshold {_num(entry.get('threshold'))}; ROI {entry.get('roi_source', '?')})")
        size = entry.get("lesion_size_mm") or {}
        if isinstance(size.get("width_mm"), (int, float)) and isinstance(size.get("height_mm"), (int, float)):
            line += f", lesion {size['width_mm']:.0f} × {size['height_mm']:.0f} mm"
    lines = [line]
    ood = entry.get("ood") or {}
    if isinstance(ood.get("score"), (int, float)) and not ood.get("out_of_distribution"):
        lines.append(f"  distance to the training frames {_num(ood['score'], 1)} (flagged above {_num(ood.get('threshold'), 1)})"
                     + (" on the segmenter's best candidate region" if entry.get("probability") is None else ""))
    peak = entry.get("heatmap_peak") or {}
    if peak.get("inside_roi") is False:
        lines.append(f"  note: the {peak.get('note') or 'heat map peaks outside the analysed ROI'}")
    return lines + _flags(entry)


def _covid_patient(result: dict[str, Any]) -> list[str]:
    patient = result.get("patient") or {}
    label = patient.get("label") or ("COVID-19 pneumonia" if patient.get("decision") else "normal")
    rule = patient.get("rule") or {}
    line = f"patient: {label}, score {_num(patient.get('score'))} over {result.get('n_slices', '?')} slices"
    if patient.get("location"):
        line += f", {patient['location']}"
    if rule.get("k_consecutive"):
        line += f" (positive when ≥ {rule['k_consecutive']} consecutive slices show a lesion in one quadrant)"
    boxed = sum(1 for s in result.get("slices") or [] if s.get("boxes"))
    return [line, f"  slices with a lesion box: {boxed}", *_flags({**result, **patient}, "  ")]


def _liver_findings(result: dict[str, Any]) -> list[str]:
    patient = result.get("patient") or {}
    findings = result.get("findings") or []
    lines = [f"{patient.get('n_inside_liver', 0)} lesion box(es) inside the liver, {len(findings)} finding(s); phases: "
             + ", ".join(patient.get("phases") or ["unknown"])]
    for finding in findings[:MAX_FINDINGS]:
        evidence = finding.get("evidence") or {}
        pattern = evidence.get("pattern") or "indeterminate"
        if evidence.get("benign_malignant"):
            pattern = f"{evidence['benign_malignant']} pattern ({pattern})"
        slices = finding.get("slices") or []
        size = (finding.get("size_mm") or {}).get("long_axis")
        lines.append(f"  #{finding.get('id')} {finding.get('study', '')} slice index {slices[0] if slices else '?'}–"
                     f"{slices[-1] if slices else '?'}, {finding.get('location') or 'location unknown'}"
                     + (f", ~{size:.0f} mm" if isinstance(size, (int, float)) else "") + f": {pattern}")
    if len(findings) > MAX_FINDINGS:
        lines.append(f"  … and {len(findings) - MAX_FINDINGS} more (--json)")
    probabilities = patient.get("probabilities")
    if probabilities:
        lines.append("  class probabilities: " + ", ".join(f"{k} {_num(v, 2)}" for k, v in probabilities.items()))
    return lines + _flags(result)


def summary_lines(task: str, result: dict[str, Any]) -> list[str]:
    """The lines ``lesiondx predict`` prints without ``--json``."""
    lines = [f"{task} — {result.get('model_version', 'model ?')}"]
    if isinstance(result.get("results"), list):
        for entry in result["results"]:
            lines += _us_frame(entry)
    elif task == "ct-covid":
        lines += _covid_patient(result)
    else:
        lines += _liver_findings(result)
    written = [p for p in (result.get("overlays") or []) if p] + [r.get("overlay") for r in result.get("results") or []
                                                                    if isinstance(r, dict) and r.get("overlay")]
    lines.append(f"{len(written)} overlay image(s) written to {_common_folder([str(p) for p in written])}; the whole "
                 "result: --json" if written else "the whole result: --json")
    return lines


def _common_folder(paths: list[str]) -> str:
    try:
        return os.path.commonpath([str(Path(p).parent) for p in paths]) + "/"
    except ValueError:  # relative and absolute mixed
        return str(Path(paths[0]).parent) + "/"


def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()) if folder.is_dir() else []
    return ", ".join(names) or "nothing"


def train_lines(task: str, run_dir: Path) -> list[str]:
    """What ``lesiondx train`` wrote to ``run_dir``, its cross-validated AUC when the run records one
    (``summary.json``: ``oof_auc``), and the next step (evaluate on a folder the run never saw)."""
    run_dir = Path(run_dir)
    lines = [f"run written to {run_dir}/: {_listing(run_dir)}"]
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = {}
    auc, ci = summary.get("oof_auc"), summary.get("oof_auc_ci") or [None, None]
    if isinstance(auc, (int, float)):
        lines.append(f"out-of-fold AUC on the training folder {_num(auc)} (95% CI {_num(ci[0])} – {_num(ci[1])}, "
                     f"n {summary.get('n', '?')}; each image scored by a fold model not trained on it): an estimate "
                     "from the training data, not a test")
    lines.append(f"next: lesiondx evaluate --task {task} --model {run_dir} --data FOLDER --out DIR  (FOLDER: labelled "
                 f"images this run never saw), then lesiondx predict --task {task} --model {run_dir} INPUT")
    return lines


def evaluate_lines(out_dir: Path) -> list[str]:
    """What ``lesiondx evaluate`` wrote to ``out_dir`` and how to read it (the report where it was written:
    ``report.html``, or ``report/report.html`` for ct-covid's per-slice report)."""
    out_dir = Path(out_dir)
    reports = sorted(out_dir.glob("report.html")) + sorted(out_dir.glob("*/report.html"))
    opened = f"open {reports[0]} in a browser; " if reports else ""
    redo = (f"; lesiondx report {out_dir / 'predictions.csv'} --out DIR redoes the figures (e.g. --threshold T)"
            if (out_dir / "predictions.csv").is_file() else "")  # a detection-only evaluation writes none
    return [f"wrote {out_dir}/: {_listing(out_dir)}", f"{opened}--json prints metrics.json{redo}"]
