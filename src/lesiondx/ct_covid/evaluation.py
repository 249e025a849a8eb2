"""Evaluation of a labelled CT-MD-layout folder: per-slice and per-patient tables and metrics."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesiondx.data import Manifest
from lesiondx.gate import GateVerdict, require
from lesiondx.io import ImageReadError, MedicalImage, read_image, read_series_files
from lesiondx.progress import console, track
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


def chest_slices(verdict: GateVerdict, n_slices: int) -> tuple[int, int]:
    """First and last slice to analyse: the chest part the gate found in a longer scan (``chest_slices`` of its
    body-region check), else the whole series."""
    chest = ((verdict.checks.get("body_region") or {}).get("value") or {}).get("chest_slices")
    return (int(chest[0]), int(chest[1])) if chest else (0, n_slices - 1)


@dataclass(frozen=True)
class AnalysedSeries:
    """What :func:`analyse_gated_series` analysed: the ``result``, the analysed ``pixels`` ``(S, H, W)``, their
    ``first`` and ``last`` slice index in the series and the series' slice count ``n_series``."""

    result: SeriesResult
    pixels: np.ndarray
    first: int
    last: int
    n_series: int

    @property
    def partial(self) -> bool:
        """True when only part of the series (its chest part) was analysed."""
        return self.last - self.first + 1 < self.n_series


def analyse_gated_series(image: MedicalImage, verdict: GateVerdict, model: LoadedModel, *,
                         remove_border_air: bool | None = None) -> AnalysedSeries:
    """One series the ct-covid gate passed (``verdict``), as ``predict`` and ``evaluate`` both analyse it: a
    chest–abdomen–pelvis scan's chest part only (:func:`chest_slices`), with the series' spacing, orientation and
    slice positions (mm); slice positions in the result are indices of the whole series."""
    pixels = image.pixels if image.is_volume else image.pixels[None]
    first, last = chest_slices(verdict, len(pixels))
    part = pixels[first : last + 1]
    result = analyse_series(part, model, is_hu=image.is_hu, spacing=image.spacing,
                            remove_border_air=remove_border_air, orientation=image.orientation,
                            positions=range(first, last + 1),
                            slice_positions_mm=image.positions[first : last + 1] if image.positions else None)
    return AnalysedSeries(result, part, first, last, len(pixels))


def incomplete_negative(verdict: GateVerdict, decision: int) -> dict[str, str]:
    """``label`` and ``caveat`` for a negative call on a series that does not cover the lungs: slices missing (a
    position gap found by the gate) or lungs going on beyond its first or last slice. The slices given do not meet
    the positive rule, which does not speak for the rest. A positive call stands (a lesion found is found); a complete
    series gets nothing."""
    if decision:
        return {}
    gap = ((verdict.checks.get("geometry") or {}).get("value") or {}).get("largest_gap_mm")
    partial = (verdict.checks.get("lung_coverage") or {}).get("status") == "flagged"
    if gap is None and not partial:
        return {}
    missing = (f"{gap:.0f} mm of the series is missing between two slices" if gap is not None
               else "the lungs go on beyond the first or last slice")
    return {"label": "not assessable (incomplete series)",
            "caveat": f"the slices given do not meet the rule for a positive call, but {missing}: a negative call "
                      "does not cover the lungs outside them; send the whole chest series"}


def partial_entry(patient: str, analysed: AnalysedSeries, indices: list[int], verdict: GateVerdict) -> dict[str, Any]:
    """metrics.json's record of a series analysed in part: ``analysed_slice_index`` (first and last
    ``slice_index`` scored), ``n_analysed``, ``series_slices`` and the gate's ``reason``."""
    reason = (verdict.checks.get("body_region") or {}).get("note") or "the gate analysed part of the series"
    return {"patient_id": patient, "analysed_slice_index": [indices[0], indices[-1]] if indices else None,
            "n_analysed": len(indices), "series_slices": analysed.n_series, "reason": reason}


def partial_line(entry: dict[str, Any]) -> str:
    """One summary / report line for a :func:`partial_entry`."""
    first_last = entry["analysed_slice_index"] or ["–", "–"]
    return (f"partial analysis: patient {entry['patient_id']}: slices {first_last[0]}–{first_last[1]} "
            f"({entry['n_analysed']} of {entry['series_slices']}) analysed, the others are not scored: "
            f"{entry['reason']}")


def say(line: str) -> None:
    """One progress line on stderr (above the progress bar on a terminal, plain in a log file)."""
    console.print(line, highlight=False, markup=False, soft_wrap=True)


class ScreenProgress:
    """The row reader of evaluate's screen (``read``, e.g. :func:`lesiondx.io.read_image`) with progress: a line when
    it starts and then every ``every_s`` seconds (rows read of ``n_rows``), so that reading a large folder is not
    minutes of silence."""

    def __init__(self, read: Any, n_rows: int, n_patients: int, every_s: float = 30.0) -> None:
        self.read, self.n_rows, self.n_patients, self.every_s = read, n_rows, n_patients, every_s
        self.done, self.started, self.last = 0, 0.0, 0.0

    def __call__(self, row: pd.Series) -> object:
        now = time.perf_counter()
        if not self.done:
            self.started = self.last = now
            say(f"ct-covid: reading and checking {self.n_rows} slices of {self.n_patients} "
                f"patient{'s' if self.n_patients != 1 else ''}")
        elif now - self.last >= self.every_s:
            self.last = now
            say(f"ct-covid: read {self.done} of {self.n_rows} slices ({now - self.started:.0f} s)")
        self.done += 1
        return self.read(row["image"])


def caveat_lines(patients: pd.DataFrame) -> list[str]:
    """Summary lines naming the series the input gate flagged (scored, but outside what the model was validated on)
    and the negative calls ``predict`` gives as not assessable (a series that does not cover the lungs)."""
    lines = []
    for mask, text in ((patients["gate"] == "flagged", "input gate flagged {n} of {total} series (scored, but outside "
                        "what the model was validated on; reasons in patients.csv gate_notes)"),
                       (patients["call_note"] != "", "{n} negative call(s) on series that do not cover the lungs "
                        "(predict: not assessable, incomplete series; counted as negative here, patients.csv "
                        "call_note)")) if len(patients) else ():
        chosen = patients.loc[mask, "patient_id"].astype(str)
        if len(chosen):
            names = ", ".join(chosen.head(20)) + (" and more" if len(chosen) > 20 else "")
            lines.append(text.format(n=len(chosen), total=len(patients)) + f": {names}")
    return lines


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


def run_folder(manifest: Manifest, model: LoadedModel, verdicts: dict[str, GateVerdict] | None = None,
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float], list[dict[str, Any]]]:
    """Predict every patient of ``manifest`` through :func:`analyse_gated_series` (``verdicts``: the gate's verdict
    per patient when already checked, else the gate runs here); ``(slice table, patient table, summed stage
    seconds, series analysed in part)``. Slices outside the analysed part are not in the slice table."""
    frame = manifest.frame
    truth_col = run_folder_checks(manifest)
    slice_rows, patient_rows, timings, partial = [], [], {}, []
    groups = list(frame.groupby("patient_id", sort=True))
    for number, (patient, rows) in enumerate(track(groups, "ct-covid patients"), 1):
        started = time.perf_counter()
        rows = rows.sort_values("slice_index")
        if rows["slice_index"].duplicated().any():
            raise ValueError(f"{manifest.root / 'labels.csv'}: patient {patient} repeats a slice_index")
        labels = rows["label"].astype(str).unique()
        if len(labels) != 1:
            raise ValueError(f"{manifest.root / 'labels.csv'}: patient {patient} has several labels {list(labels)}")
        image = read_series_files(list(rows["image"]))
        verdict = (verdicts or {}).get(str(patient)) or require("ct-covid", image, Path(rows["image"].iloc[0]).parent)
        analysed = analyse_gated_series(image, verdict, model)
        result: SeriesResult = analysed.result
        for key, value in result.timings.items():
            timings[key] = timings.get(key, 0.0) + value
        files = image.sources if len(image.sources) == analysed.n_series else tuple(rows["image"])  # series order
        by_file = {str(Path(p).resolve()): row for (_, row), p in zip(rows.iterrows(), rows["image"])}
        scored = [(by_file[str(Path(files[s.position]).resolve())], s) for s in result.slices]
        for row, s in scored:
            slice_rows.append({"image_id": row["image_id"], "patient_id": patient, "slice_index": int(row["slice_index"]),
                               "truth": int(row[truth_col]), "score": s.score, "n_boxes": len(s.boxes),
                               "quadrants": ";".join(sorted(set(s.quadrants)))})
        indices = [int(row["slice_index"]) for row, _ in scored]
        if analysed.partial:
            partial.append(partial_entry(str(patient), analysed, indices, verdict))
        p = result.patient
        index_of = {s.position: int(row["slice_index"]) for row, s in scored}
        run = [index_of.get(q) for q in p.run] if p.run else None
        patient_rows.append({"patient_id": patient, "label": labels[0], "truth": patient_truth(labels[0], model.config),
                             "decision": p.decision, "score": p.score, "quadrant": p.quadrant,
                             "run_length": p.run_length, "run_slices": f"{run[0]}–{run[1]}" if run else "",
                             "n_slices": len(scored), "series_slices": len(rows),
                             "analysed_slices": f"{indices[0]}–{indices[-1]}" if indices else "",
                             "call_note": incomplete_negative(verdict, p.decision).get("label", ""),
                             "gate": verdict.status, "gate_notes": "; ".join(verdict.reasons)})
        say(f"ct-covid: patient {number}/{len(groups)} {patient}: {len(scored)} slices"
            + (f" (chest part {indices[0]}–{indices[-1]} of {len(rows)})" if analysed.partial and indices else "")
            + f", {'positive' if p.decision else 'negative'} (score {p.score:.3f}, longest run {p.run_length}), "
            f"{time.perf_counter() - started:.0f} s")
    return pd.DataFrame(slice_rows), pd.DataFrame(patient_rows), timings, partial


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


def evaluate_command(model: str, data: Path, out: Path, strict: bool) -> str:
    """The command line that redoes this evaluation: absolute paths, and ``--engine`` when one was asked for."""
    import os
    import shlex

    from lesiondx.runtime import ENGINE_ENV

    parts = ["lesiondx", "evaluate", "--task", "ct-covid", "--model",
             model if model == "default" else str(Path(model).resolve()), "--data", str(Path(data).resolve()),
             "--out", str(Path(out).resolve())]
    parts += ["--engine", os.environ[ENGINE_ENV]] if os.environ.get(ENGINE_ENV) else []
    return shlex.join(parts + (["--strict"] if strict else []))


def independence_text(seen: dict[str, Any], model_dir: Path) -> str:
    """In words, which scored slices the model never saw (``seen``: metrics.json's ``seen_in_training``)."""
    from lesiondx.data.provenance import read_training_files

    if not seen["checked"]:
        return seen["note"]
    n_files = len(read_training_files(model_dir) or {})
    if not seen["n_seen"]:
        return (f"all {seen['n_rows']} scored slices: none is among the {n_files} files this model was trained or "
                "tuned on (matched by content; a re-encoded copy would not be found)")
    roles = ", ".join(f"{role} ({n})" for role, n in seen["by_role"].items())
    return (f"{seen['n_rows'] - seen['n_seen']} of {seen['n_rows']} scored slices; the other {seen['n_seen']} were "
            f"used to train or tune it ({roles}): NOT AN INDEPENDENT TEST")


MAX_PROFILES = 24  # patients drawn in the slice-score figure (wrong decisions first)


def profile_figure(slices: pd.DataFrame, patients: pd.DataFrame, threshold: float, path: Path) -> str:
    """``path``: per-patient slice scores (:func:`lesiondx.stats.plots.series_profile_figure`), wrong decisions first,
    at most ``MAX_PROFILES``; returns the caption."""
    from lesiondx.stats.plots import SeriesProfile, fig_to_png, series_profile_figure

    order = patients.assign(_right=patients["truth"] == patients["decision"]).sort_values(["_right", "patient_id"])
    shown = order.head(MAX_PROFILES)
    profiles = []
    for _, p in shown.iterrows():
        rows = slices[slices["patient_id"] == p["patient_id"]]
        run = tuple(int(v) for v in p["run_slices"].split("–")) if p["run_slices"] else None
        profiles.append(SeriesProfile(f"{p['patient_id']} · {p['label']} · called "
                                      f"{'positive' if p['decision'] else 'negative'} ({p['score']:.2f})",
                                      rows["slice_index"].to_numpy(), rows["score"].to_numpy(),
                                      rows["truth"].to_numpy(), run if p["decision"] else None))
    path.write_bytes(fig_to_png(series_profile_figure(profiles, threshold), dpi=90))
    return (f"Slice score against slice index for {len(shown)} of {len(patients)} patients (wrong decisions first); "
            f"dashed: the slice threshold {threshold:g}; red band: slices the truth column marks positive; green band: "
            f"the run of slices a positive call rests on. Also {path.name}.")


def write_overview(out: Path, metrics: dict[str, Any], slices: pd.DataFrame, patients: pd.DataFrame, *,
                   lead: list[str], model_dir: Path, threshold: float, rule: str) -> Path:
    """``out/report.html``: what was evaluated (command, model, data it never saw), slice- and patient-level metrics
    with CIs, the ROC and slice-score figures, the per-patient table, partial analyses and exclusions; written
    whatever the class counts (the stats reports need two of each)."""
    import datetime as dt

    from lesiondx import __version__
    from lesiondx.stats.report_html import render_html

    reports = metrics["reports"]
    link = {name: f"{name}/report.html" if not text.startswith("not written") else None for name, text in reports.items()}
    levels = [{"name": "per slice", "m": metrics["slice"], "decision": f"slice score ≥ {threshold:g} (fixed before)",
               "link": link["report"], "no_link": reports["report"]},
              {"name": "per patient", "m": metrics["patient"], "decision": "series rule (below)",
               "link": link["patient_report"], "no_link": reports["patient_report"]}]
    caption = profile_figure(slices, patients, threshold, out / "slice_scores_per_patient.png") if len(patients) else ""
    roc = "report/roc_slice.png" if (out / "report" / "roc_slice.png").is_file() else None
    html = render_html(
        "ct_covid_evaluation.html", title="ct-covid evaluation", generated=dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        lesiondx_version=__version__, model_version=metrics["model_version"], engine=metrics["engine"],
        data=metrics["data"], command=metrics["command"], model_dir=str(model_dir),
        independence=independence_text(metrics["seen_in_training"], model_dir), n_listed=metrics["n_listed"],
        n_slices=metrics["n_slices"], n_patients=metrics["n_patients"], n_excluded=metrics["n_excluded"],
        n_partial=len(metrics["partially_analysed"]), lead=lead, levels=levels, roc=roc,
        profiles="slice_scores_per_patient.png" if caption else None, profiles_caption=caption,
        patients=patients.to_dict("records"), rule=rule,
        partial=[partial_line(p) for p in metrics["partially_analysed"]], excluded=metrics["excluded"][:200])
    path = out / "report.html"
    path.write_text(html, encoding="utf-8")
    return path
