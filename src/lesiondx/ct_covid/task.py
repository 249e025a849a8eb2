"""``lesiondx train|evaluate|predict --task ct-covid``: COVID-19 chest CT second opinion.

Pipeline per series: lung window → lung field → crop to the lungs → UNet++ infection
probabilities (kept inside the lung field) → lesion boxes and quadrants → patient rule
(lesion in one quadrant on ≥ k consecutive slices) with a continuous patient score.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from lesiondx.config import config_to_dict
from lesiondx.data import (BadRow, Screened, check_training_rows, image_roles, lead_lines, load_manifest, no_rows_left,
                           report_notes, require_task_layout, screen_rows, seen_in_training, write_training_files)
from lesiondx.data.badrows import relative_name
from lesiondx.gate import GateVerdict, require, result_fields
from lesiondx.gate.ct_covid import VALIDATED_STEPS_MM
from lesiondx.gate.ood import load_stats
from lesiondx.io import (EVALUATE_MAX_BYTES, display_grey, read_image, read_raster_array, read_series_files, read_study,
                         shared_decodes)

from .config import read_config
from .evaluation import (ScreenProgress, analyse_gated_series, caveat_lines, evaluate_command, incomplete_negative,
                         metrics_and_report, partial_line, run_folder, run_folder_checks, write_overview)
from .locations import frame_note
from .model import CONFIG, export_model, load_model
from .ood import series_ood
from .pipeline import save_positive_overlays
from .segmentation import evaluate_segmentation, evaluation_rows


if TYPE_CHECKING:
    from lesiondx.data import Manifest
    from lesiondx.models.training import TrainingRun

    from .config import CovidConfig


def train(data: Path, out: Path, config: Path | None = None, skip_bad: bool = False) -> Path:
    """Train the UNet++ on a folder with infection masks (MedSeg layout, ``split == train`` rows).

    Writes ``model.pt`` and ``model.onnx``, ``config.yaml``, ``history.csv``, ``split.csv``, ``data_hash.txt``,
    ``run.json`` into ``OUT.partial``, renamed to ``out`` at the end (an error or Ctrl-C leaves nothing); returns
    ``out``. Every row's files are opened first: a bad one stops it before anything is trained (``BadRowsError``),
    or with ``skip_bad`` its row is left out and listed in ``skipped_rows.csv`` (a ``negative_data`` folder's in
    ``skipped_rows_<folder>.csv``).
    """
    from lesiondx.models.training import training_run

    cfg = read_config(config)
    manifest = load_manifest(data)
    require_task_layout(manifest, "ct-covid")
    with training_run(out, data=data, seed=cfg.seed, warnings=manifest.warnings) as run:
        _train_into(run, manifest, cfg, skip_bad)
    return Path(out)


def _train_into(run: TrainingRun, manifest: Manifest, cfg: CovidConfig, skip_bad: bool) -> None:
    """The body of :func:`train`, writing into ``run.path`` (the staged run directory)."""
    from .train import negative_rows, resolve_folders, train_segmenter, training_rows  # torch: training extras only

    used = manifest.subset(manifest.frame["image_id"].isin(training_rows(manifest)["image_id"]))
    out = run.path
    manifest = check_training_rows(used, skip_bad=skip_bad, run_dir=out)
    run.hash_data(manifest.root, manifest.frame)  # the rows it trains on (the negative folders are not hashed)
    negatives = [check_training_rows(load_manifest(folder), skip_bad=skip_bad, run_dir=out,
                                     skipped_name=f"skipped_rows_{folder.name}.csv")
                 for folder in resolve_folders(cfg.negative_data, manifest.root)]
    (out / CONFIG).write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

    segmenter = train_segmenter(manifest, out, cfg, negatives)
    trained = manifest.frame["image_id"].astype(str).isin(segmenter.image_ids)
    write_training_files(out, image_roles(manifest.frame[trained], "segmenter training"), root=manifest.root)
    for folder in negatives:  # the slices it trained on as negatives (not those of exclude_patients)
        write_training_files(out, image_roles(negative_rows(folder, cfg), f"segmenter negatives ({folder.root.name})"),
                             root=folder.root, append=True)
    export_model(out)  # model.onnx beside model.pt: what predict/evaluate/serve run on


def evaluate(model: str, data: Path, out: Path, strict: bool = False) -> dict[str, Any]:
    """Evaluate on a CT-MD-layout folder (DICOM slices with ``patient_id``, ``slice_index``, ``infection``).

    A folder with ``infection_mask`` (MedSeg layout) gets a Dice evaluation of its ``test`` rows
    instead (``segmentation.csv``, ``dice_per_slice.png``, ``metrics.json`` with a ``segmentation`` section). Otherwise
    each patient's series goes through :func:`~.evaluation.analyse_gated_series` as in ``predict`` (a chest–abdomen
    scan: its chest part, listed in ``partially_analysed``) and it writes ``predictions.csv`` (per slice),
    ``patients.csv``, ``metrics.json`` (with the ``command`` that redoes it), the overview ``report.html`` and the stats
    reports (``report/``: per slice, ``patient_report/``: per patient when ≥ 2 of each class).
    A slice (or mask) that cannot be read is excluded, and every slice of a series the ct-covid gate refuses;
    they are listed in ``excluded`` and counted in the first summary line (``strict``: stop at the first).
    """
    loaded = load_model(model)
    manifest = load_manifest(data)
    require_task_layout(manifest, "ct-covid")
    out = Path(out)
    started = time.perf_counter()
    if strict or "infection_mask" in manifest.frame.columns:
        manifest.require_files()  # a CT-MD row whose file is missing is otherwise excluded by the screen below
    if "infection_mask" in manifest.frame.columns:
        rows = manifest.subset(manifest.frame["image_id"].isin(evaluation_rows(manifest)["image_id"]))
        screened = screen_rows(rows, _usable_mask_row, strict=strict)
        if no_rows_left(screened):
            raise ValueError(no_rows_left(screened))
        out.mkdir(parents=True, exist_ok=True)
        return _evaluate_masks(screened, loaded, out, started, evaluate_command(model, data, out, strict))
    run_folder_checks(manifest)
    with shared_decodes(max_bytes=EVALUATE_MAX_BYTES):  # a slice read by the screen is not decoded again to score it
        verdicts: dict[str, GateVerdict] = {}  # patient → the gate's verdict on its series, kept for the analysis
        left_out: list[BadRow] = []  # rows whose file the series reader skipped (a scout among the slices)
        reader = ScreenProgress(read_image, len(manifest), manifest.frame["patient_id"].nunique())
        screened = screen_rows(manifest, reader, strict=strict, group_by="patient_id",
                               check_group=lambda rows: _usable_series(rows, manifest.root, verdicts, left_out))
        screened = _without(screened, left_out)
        if no_rows_left(screened):
            raise ValueError(no_rows_left(screened))
        out.mkdir(parents=True, exist_ok=True)
        slices, patients, timings, partial = run_folder(screened.manifest, loaded, verdicts)
    seen = seen_in_training(loaded.path.parent, screened.manifest)
    input_lines = [partial_line(p) for p in partial] + caveat_lines(patients)
    metrics = metrics_and_report(slices, patients, out, threshold=loaded.config.prob_threshold,
                                 rule=loaded.config.rule_text,
                                 notes=(*report_notes(seen, screened), *input_lines))
    lead = lead_lines(seen, screened)  # the training overlap first, then exclusions, then what the gate changed
    metrics["summary"] = lead_lines(seen, screened, metrics["summary"])
    metrics["summary"][len(lead):len(lead)] = input_lines
    metrics.update({"task": "ct-covid", "model_version": loaded.version, "data": str(manifest.root),
                    "command": evaluate_command(model, data, out, strict), "engine": loaded.engine,
                    "n_slices": len(slices), "n_patients": len(patients), **screened.fields(), **seen.fields(),
                    "partially_analysed": partial,
                    "patients": patients.drop(columns=["quadrant"]).to_dict("records"),
                    "seconds": {**{k: round(v, 2) for k, v in timings.items()},
                                "total_s": round(time.perf_counter() - started, 2)}})
    metrics["overview"] = str(out / "report.html")
    write_overview(out, metrics, slices, patients, lead=[*lead, *input_lines],
                   model_dir=loaded.path.parent, threshold=loaded.config.prob_threshold, rule=loaded.config.rule_text)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _usable_mask_row(row: Any) -> None:
    """A MedSeg row's slice and infection mask read as the segmentation evaluation reads them."""
    read_raster_array(row["image"], grey=True)
    read_raster_array(row["infection_mask"], grey=True)


def _usable_series(rows: Any, root: Path, verdicts: dict[str, GateVerdict], left_out: list[BadRow]) -> None:
    """The ct-covid gate on one patient's slices read as a series (``InputRefused`` naming its folder); its verdict
    goes into ``verdicts``, and a row whose file the series reader skipped (a localizer, another series) into
    ``left_out`` with the reader's note."""
    files = list(rows.sort_values("slice_index")["image"])
    image = read_series_files(files)
    verdicts[str(rows["patient_id"].iloc[0])] = require("ct-covid", image, Path(files[0]).parent)
    read = {Path(p).resolve() for p in image.sources}
    note = "; ".join(image.warnings) or "not part of the series read"
    left_out += [BadRow(str(r["image_id"]), relative_name(root, r["image"]), f"left out of the patient's series: {note}")
                 for _, r in rows.iterrows() if Path(r["image"]).resolve() not in read]


def _without(screened: Screened, rows: list[BadRow]) -> Screened:
    """``screened`` with ``rows`` moved from the kept rows to the excluded ones (listed after the others)."""
    if not rows:
        return screened
    ids = {b.image_id for b in rows}
    kept = screened.manifest.subset(~screened.manifest.frame["image_id"].astype(str).isin(ids))
    return Screened(kept, (*screened.excluded, *rows), screened.n_listed)


def _evaluate_masks(screened: Screened, loaded, out: Path, started: float, command: str) -> dict[str, Any]:
    """A folder with infection masks (MedSeg layout): Dice on its ``test`` rows."""
    reason = "folder with infection masks: every slice is positive, so only segmentation is evaluated"
    seg = evaluate_segmentation(screened.manifest, loaded, out)
    dice = seg.get("dice") or {}
    seen = seen_in_training(loaded.path.parent, screened.manifest)
    summary = lead_lines(seen, screened)
    summary += [f"ct-covid segmentation on {seg['n_slices']} slices ({reason}): mean Dice "
                + (f"{dice['mean']:.3f} (95% CI {dice['ci'][0]:.3f}–{dice['ci'][1]:.3f}, slices resampled)"
                   if dice.get("mean") is not None and None not in dice.get("ci", [None]) else "–")]
    metrics = {"task": "ct-covid", "model_version": loaded.version, "data": str(screened.manifest.root),
               "command": command, "engine": loaded.engine, "figures": {"dice": _dice_figure(out, dice)},
               "segmentation": seg, "slice": None, "patient": None, "note": reason, "summary": summary,
               **screened.fields(), **seen.fields(), "seconds": {"total_s": round(time.perf_counter() - started, 2)}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def _dice_figure(out: Path, dice: dict[str, Any]) -> str:
    """``out/dice_per_slice.png``: each slice's Dice against its infection size (segmentation.csv), mean and CI."""
    import pandas as pd

    from lesiondx.stats.plots import fig_to_png, per_case_figure

    table = pd.read_csv(out / "segmentation.csv")
    fig = per_case_figure(table["infection_pixels"].clip(lower=1), table["dice"], dice.get("mean"), dice.get("ci"),
                          xlabel="infection in the truth mask (pixels, log scale)", ylabel="Dice",
                          title="ct-covid segmentation: Dice per slice (CI: slices resampled)", log_x=True)
    (out / "dice_per_slice.png").write_bytes(fig_to_png(fig))
    return "dice_per_slice.png"


def _read_series(inputs: list[Path]) -> tuple[Any, str]:
    """One series from a folder, or from several slice files of one series (DICOM ordered by position,
    PNG/JPG in the order given; see :func:`lesiondx.io.read_series_files`)."""
    if len(inputs) == 1:  # of several reconstructions in a folder, one in the patient rule's validated step range
        return read_study(inputs[0], prefer_step_mm=VALIDATED_STEPS_MM), str(inputs[0])
    if any(Path(p).is_dir() for p in inputs):
        raise ValueError("give one series folder, or several slice files of one series in order")
    return read_series_files(inputs), ", ".join(map(str, inputs))


def predict(inputs: list[Path], model: str = "default", out: Path | None = None, **options: Any) -> dict[str, Any]:
    """Second opinion for one chest-CT series (a DICOM folder, a slice folder, or slice files in order).

    The input gate runs first: out-of-scope input (ultrasound, MR, abdominal CT) raises ``InputRefused``;
    borderline input gives a result with ``out_of_scope_flag`` True and the reasons in ``gate``.

    Options: ``remove_border_air`` (bool; default True for HU input, False for 8-bit slices already
    cropped to the chest). Returns JSON-serialisable ``patient``, ``slices``, ``overlays`` (PNG of
    each slice with a lesion, when ``out`` is given), ``heatmaps`` (slice → ``.npy`` lesion-probability map 0..1 of
    each slice with a lesion, when ``out`` is given), ``model_version`` and per-stage ``seconds``.
    """
    if not inputs:
        raise ValueError("no input given: pass a DICOM series folder or slice files")
    unknown = set(options) - {"remove_border_air"}
    if unknown:
        raise ValueError(f"unknown option(s) for ct-covid: {', '.join(sorted(unknown))}")
    t = time.perf_counter()
    image, source = _read_series([Path(p) for p in inputs])
    decode_s = time.perf_counter() - t
    verdict = require("ct-covid", image, source)  # refuses ultrasound, MR, abdominal series... before any model
    loaded = load_model(model)
    analysed = analyse_gated_series(image, verdict, loaded, remove_border_air=options.get("remove_border_air"))
    result, pixels = analysed.result, analysed.pixels  # a chest–abdomen–pelvis scan: its chest part
    cfg = loaded.config
    ood = series_ood(loaded, pixels, image.is_hu, result, load_stats(loaded.path.parent / "ood_stats.npz"))
    fields = result_fields([verdict], image.warnings)
    if ood["out_of_distribution"]:  # far from the training slices in the model's own encoder features
        fields |= {"out_of_scope_flag": True, "validated_on_input": False}
    overlays: list[str] = []
    heatmaps: dict[int, str] = {}  # slice → .npy lesion-probability map (0..1), for the service's stack viewer
    if out is not None:
        overlays = save_positive_overlays(result, display_grey(pixels, image.is_hu, cfg.window), Path(out))
        for i, s in enumerate(result.slices):
            if s.boxes:
                heatmaps[s.position] = str(Path(out) / f"heat_{s.position:04d}.npy")
                np.save(heatmaps[s.position], result.heatmap(i).astype(np.float16))
    rule = {"k_consecutive": cfg.k_consecutive, "prob_threshold": cfg.prob_threshold,
            "min_lesion_diameter_mm": cfg.min_lesion_diameter_mm if image.spacing is not None else None,
            "min_lesion_area_px": round(result.min_lesion_area_px, 1),
            "model_resolution": cfg.input_size,
            "candidate_filter_threshold": cfg.filter_threshold if loaded.candidate_filter is not None else None,
            **result.patient.to_dict()}
    rule.pop("decision")
    rule.pop("score")
    rule["run_location"] = result.location
    location = result.location if result.patient.decision else None
    patient = {"decision": result.patient.decision, "score": result.patient.score, "location": location,
               "rule": rule, "out_of_scope_flag": fields["out_of_scope_flag"], "ood_score": ood["score"],
               **incomplete_negative(verdict, result.patient.decision)}
    return {
        "input": source, "n_slices": len(result.slices), "is_hu": image.is_hu,
        **({"analysed_slices": [analysed.first, analysed.last], "series_slices": analysed.n_series}
           if analysed.partial else {}),
        **fields, "ood": ood,
        "patient": patient,
        "location_basis": frame_note(result.frame) if result.frame is not None else None,
        "slices": [s.to_dict() for s in result.slices],
        "overlays": overlays,
        **({"heatmaps": heatmaps} if heatmaps else {}),
        "model_version": loaded.version,
        "seconds": {"decode_s": round(decode_s, 3), **{k: round(v, 3) for k, v in result.timings.items()}},
    }
