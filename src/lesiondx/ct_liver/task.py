"""ct-liver task: ``train``, ``evaluate`` and ``predict`` as called by the CLI and the service.

- AUL-layout folder (ultrasound lesions with masks): trains the LiLNet classifier (benign/malignant).
- CT slice folder whose labels are lesion types (e.g. the SYNTHETIC multiphase phantom): trains the
  classifier on lesion crops from the reference masks.
- CT slice folder with liver + lesion masks (IRCADb layout): trains the liver U-Net and the detector.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from lesiondx.config import config_to_dict
from lesiondx.data import (Manifest, Screened, as_manifest, check_training_rows, image_roles, lead_lines,
                           load_manifest, no_rows_left, report_notes, require_known_labels, require_task_layout,
                           screen_rows, seen_in_training, write_training_files)
from lesiondx.gate import require, result_fields
from lesiondx.io import (EVALUATE_MAX_BYTES, ImageReadError, parse_window_option, read_image, read_series_files, read_study,
                         shared_decodes)
from lesiondx.progress import track
from lesiondx.runtime import set_torch_threads

from .config import CtLiverConfig, load
from .coverage import craniocaudal_check, field_of_view_check, position_gaps, with_check
from .label_tree import LabelTree
from .multiphase import patient_probabilities
from .findings import Series, align, findings
from .phase_set import admit_series, check_phase_set, repeated_phases
from .phases import PHASES, phases_by_time, series_phase, series_tags
from .pipeline import (Bundle, analyse, box_crop, classifier_input, classifier_probabilities, detect_parts, liver_mask,
                       load_bundle, save_classifier, uses_lilnet, write_json)
from .stages import Stopwatch
from .study import DEFAULT_EXPORT_WINDOW, Study, from_image, labelled_studies

if TYPE_CHECKING:
    from lesiondx.models.training import TrainingRun

SHIPPED_NOTE = ("default model: HU-rule liver filter + rule-based detector of lesions >= 5 mm darker or brighter than "
                "the patient's liver (no learned detector ships: the only boxes we have are IRCADb's, CC BY-NC-ND); "
                "lesions are characterised by measured enhancement features (APHE, washout, capsule, cyst, nodular "
                "fill-in, rim) and a transparent rule table — evidence, not probabilities, validated only on SYNTHETIC "
                "multiphase phantoms; no class probabilities unless classifier: lilnet (trained on labelled CT)")


def _log(run: Path):
    def log(msg: str) -> None:
        line = f"{_dt.datetime.now().strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(run / "train.log", "a") as fh:
            fh.write(line + "\n")
    return log


def _patient_labels(folder: Path | Manifest) -> dict[str, str]:
    frame = as_manifest(folder).frame
    return {str(p): str(rows["label"].iloc[0]) for p, rows in frame.groupby("patient_id")}


def _tree_labels(cfg: CtLiverConfig) -> tuple[str, ...]:
    """Every label of the configured label tree (top level and leaves)."""
    tree = LabelTree.from_mapping(cfg.label_tree)
    return (*tree.top, *tree.leaves)


def _is_lesion_type_folder(folder: Path | Manifest, cfg: CtLiverConfig) -> bool:
    return set(as_manifest(folder).frame["label"].astype(str)) <= set(_tree_labels(cfg))


def ct_lesion_crops(studies: list[Study], labels: dict[str, str], cfg: CtLiverConfig) -> tuple[np.ndarray, list[str]]:
    """Classifier inputs from every lesion part on every slice/phase (reference masks) and their labels."""
    from .detector import lesion_boxes

    crops, ys = [], []
    for study in studies:
        for z, sl in enumerate(study.lesion):
            for box in lesion_boxes(sl):
                crops.append(classifier_input(box_crop(study.grey[z], box, cfg), cfg))
                ys.append(labels[study.patient_id])
    if not crops:
        raise ValueError("no lesion in the reference masks: nothing to classify")
    return np.stack(crops), ys


def train_ircadb(data: Path, run: Path, cfg: CtLiverConfig, studies: list[Study] | None = None, log=print) -> dict:
    """Liver U-Net and lesion detector from a folder with liver masks and lesion label maps."""
    from lesiondx.models import save_checkpoint

    from .detector import lesion_boxes, train_detector
    from .evaluation import liver_values
    from .liver_net import train_liver_net

    studies = studies if studies is not None else labelled_studies(data)
    rng = np.random.default_rng(cfg.seed)
    info: dict[str, Any] = {"patients": sorted({s.patient_id for s in studies})}
    if cfg.train_liver:
        pairs = [(s.grey[z], s.liver[z]) for s in studies for z in range(s.n_slices)]
        pick = rng.permutation(len(pairs))[: cfg.liver_max_slices]
        net = train_liver_net([pairs[i][0] for i in pick], [pairs[i][1] for i in pick], px=cfg.liver_px,
                              epochs=cfg.liver_epochs, seed=cfg.seed, log=log)
        save_checkpoint(run / "liver_net.pt", {"liver_net": net}, {"trained_on": info["patients"], "px": cfg.liver_px})
        info["liver_slices"] = len(pick)
    if cfg.train_detector:
        slices, boxes = [], []
        for s in studies:
            inside, _ = liver_values(data, s.patient_id, s.lesion)
            for z in range(s.n_slices):
                b = lesion_boxes(s.lesion[z], inside)
                if b or s.liver[z].any():
                    slices.append(s.grey[z])
                    boxes.append(b)
        det = train_detector(slices, boxes, input_px=cfg.detector_px, steps=cfg.detector_steps,
                             batch_size=cfg.detector_batch, seed=cfg.seed, log=log)
        save_checkpoint(run / "detector.pt", {"detector": det}, {"trained_on": info["patients"]})
        info["detector_slices"] = len(slices)
        info["detector_boxes"] = int(sum(len(b) for b in boxes))
    return info


def train(data: Path, out: Path, config: Path | None = None, skip_bad: bool = False, **overrides: Any) -> Path:
    """Train what the folder supports (see module doc) into run dir ``out``; returns it. It is written into
    ``OUT.partial``, renamed to ``out`` at the end with ``run.json`` and ``data_hash.txt`` (an error or Ctrl-C
    leaves nothing). Every row's files are opened first: a bad one stops it before anything is trained
    (``BadRowsError``), or with ``skip_bad`` its row is left out and listed in ``skipped_rows.csv``."""
    from lesiondx.models.training import training_run

    cfg = load(config, **overrides)
    data = Path(data)
    manifest = load_manifest(data)
    require_task_layout(manifest, "ct-liver", also=("us-liver",))  # the classifier learns from ultrasound crops
    require_known_labels(manifest, "ct-liver", _tree_labels(cfg))
    with training_run(out, data=data, seed=cfg.seed, warnings=manifest.warnings) as run:
        _train_into(run, data, manifest, cfg, skip_bad)
    return Path(out)


def _train_into(run: TrainingRun, data: Path, manifest: Manifest, cfg: CtLiverConfig, skip_bad: bool) -> None:
    """The body of :func:`train`, writing into ``run.path`` (the staged run directory; ``run.name`` is the final
    one's name, which the model's version carries)."""
    out = run.path
    manifest = check_training_rows(manifest, skip_bad=skip_bad, run_dir=out)
    run.hash_data(manifest.root, manifest.frame)
    import torch  # training: lesiondx[train]

    torch.set_num_threads(max(1, cfg.threads))
    (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    write_training_files(out, image_roles(manifest.frame, f"training folder {data.name}"), root=manifest.root)
    log = _log(out)
    meta: dict[str, Any] = {"data": str(data), "layout": manifest.layout.name, "date": _dt.date.today().isoformat(),
                            "version": f"{run.name}-{_dt.date.today().isoformat()}"}
    if manifest.layout.name == "aul_liver_us":
        from .recipe import aul_crops, train_classifier

        crops = aul_crops(manifest, cfg)
        model, level = train_classifier(crops.crops, list(crops.table["label"]), cfg, log=log)
        save_classifier(out / "classifier.pt", model, cfg, level, {**meta, "trained_on": "AUL ultrasound lesion crops"})
        meta.update(level=level, n_crops=len(crops.table))
    elif "slice_index" in manifest.frame.columns and _is_lesion_type_folder(manifest, cfg):
        from .recipe import train_classifier

        studies = labelled_studies(manifest)
        crops, labels = ct_lesion_crops(studies, _patient_labels(manifest), cfg)
        model, level = train_classifier(crops, labels, cfg, log=log)
        save_classifier(out / "classifier.pt", model, cfg, level, {**meta, "trained_on": f"CT lesion crops from {data.name}"})
        meta.update(level=level, n_crops=len(labels))
    elif "slice_index" in manifest.frame.columns:
        meta.update(train_ircadb(manifest.root, out, cfg, labelled_studies(manifest), log=log))
        meta["licence_note"] = "weights trained on this folder inherit its licence; IRCADb-derived weights must not be redistributed"
    else:
        raise ValueError(f"{data}: neither an AUL-layout nor a CT slice folder (layout {manifest.layout.name})")
    write_json(out / "meta.json", meta)
    log(f"run dir {out.with_name(run.name)}")


def _screen(manifest: Manifest, strict: bool) -> Screened:
    """The rows evaluate reads, less those whose files cannot be read and, for CT studies, every slice of a
    study the ct-liver gate refuses (AUL ultrasound frames are not gated: that layout only tests the classifier)."""
    from .recipe import aul_rows, usable_aul_row
    from .study import study_keys, study_volume, usable_slice_row

    if manifest.layout.name == "aul_liver_us":
        return screen_rows(aul_rows(manifest), usable_aul_row, strict=strict)

    def gate(rows) -> None:
        rows = rows.sort_values("slice_index")
        require("ct-liver", study_volume(rows)[0], Path(rows["image"].iloc[0]).parent)

    return screen_rows(manifest, usable_slice_row, strict=strict, group_by=study_keys(manifest.frame), check_group=gate)


def evaluate(model: str, data: Path, out: Path, classifier: str | None = None, strict: bool = False) -> dict:
    """Evaluate ``model`` (run dir or "default") on a labelled folder; writes ``metrics.json`` (and for
    benign/malignant folders ``report.html``) to ``out``. Never evaluate on the data a run trained on.
    ``classifier``: ``lilnet`` scores the classifier's probabilities (lesion-type folders need it, and it is
    what they use when not given); ``features`` gives no probabilities, so it is refused there (detection
    folders do not use the classifier). Rows whose files cannot be read, and the slices of a CT study the
    ct-liver gate refuses, are excluded and listed in ``excluded`` (``strict``: stop at the first)."""
    bundle = with_classifier(load_bundle(model), classifier)
    data, out = Path(data), Path(out)
    set_torch_threads(bundle.cfg.threads)
    manifest = load_manifest(data)
    csv = manifest.root / "labels.csv"
    if manifest.frame.empty:
        raise ValueError(f"{csv}: labels.csv has no rows")
    require_task_layout(manifest, "ct-liver", also=("us-liver",))
    require_known_labels(manifest, "ct-liver", _tree_labels(bundle.cfg))
    manifest.require_files()
    aul = manifest.layout.name == "aul_liver_us"
    lesion_types = not aul and "slice_index" in manifest.frame.columns and _is_lesion_type_folder(manifest, bundle.cfg)
    _check_evaluable(manifest, bundle, classifier, lesion_types)
    with shared_decodes(max_bytes=EVALUATE_MAX_BYTES):  # a slice read by the screen is not decoded again to score it
        screened = _screen(manifest, strict)
        if no_rows_left(screened):
            raise ValueError(no_rows_left(screened))
        metrics = _evaluate_screened(screened, bundle, data, out, classifier, aul=aul, lesion_types=lesion_types)
    write_json(out / "metrics.json", metrics)
    return json.loads((out / "metrics.json").read_text())


def _evaluate_screened(screened: Screened, bundle: Bundle, data: Path, out: Path, classifier: str | None, *,
                       aul: bool, lesion_types: bool) -> dict[str, Any]:
    """metrics (and the reports in ``out``) for the rows the screen kept: AUL crops, lesion types or detection."""
    kept = screened.manifest
    out.mkdir(parents=True, exist_ok=True)
    seen = seen_in_training(bundle.root, kept)
    metrics: dict[str, Any] = {"model_version": bundle.version, "data": str(data), "classifier": bundle.cfg.classifier,
                               **screened.fields(), **seen.fields()}
    if aul:
        from lesiondx.stats.evaluation import EvalSettings, report_from_csv, summary_lines, write_predictions

        from .recipe import aul_crops

        crops = aul_crops(kept, replace(bundle.cfg))
        probs = bundle.tree.top_probabilities(classifier_probabilities(bundle, crops.crops), bundle.level)
        table = crops.table.assign(score=probs[:, bundle.tree.top.index("malignant")])
        settings = EvalSettings(positive=("malignant",), negative=("benign",),
                                title="ct-liver classifier on AUL lesion crops",
                                notes=report_notes(seen, screened))
        try:
            report = report_from_csv(write_predictions(table, out / "predictions.csv", settings), out, settings)
        except ValueError as exc:
            if not screened.excluded:
                raise
            metrics.update({"image": None, "patient": None, "not_evaluated": f"after the exclusions: {exc}",
                            "summary": [f"not evaluated: after the exclusions: {exc}"]})
        else:
            metrics.update(report.metrics)
            metrics["summary"] = summary_lines(report.metrics)
    else:
        from lesiondx.stats.report_html import fmt

        from .evaluation import evaluate_classification, evaluate_ct

        studies = labelled_studies(kept)
        if lesion_types:
            metrics["classification"] = evaluate_classification(studies, _patient_labels(kept), bundle)
            metrics["summary"] = [f"ct-liver lesion classification on {len(studies)} studies: see metrics.json"]
        else:
            metrics.update(evaluate_ct(kept.root, studies, bundle))
            metrics["summary"] = [
                f"ct-liver detection on {len(studies)} studies, {name}: F1 "
                + " / ".join(fmt(d["pooled_after_liver_filter"][k]["f1"], 2) for k in ("0.1", "0.3", "0.5"))
                + " at IoU 0.1 / 0.3 / 0.5 (pooled slices, after the liver filter)"
                for name, d in metrics["detection"]["detectors"].items()]
    metrics["summary"] = lead_lines(seen, screened, metrics["summary"])
    return metrics


def _check_evaluable(manifest: Manifest, bundle: Bundle, classifier: str | None, lesion_types: bool) -> None:
    """``ValueError`` naming labels.csv or the model when this folder cannot be evaluated with this model."""
    csv, frame = manifest.root / "labels.csv", manifest.frame
    if manifest.layout.name == "aul_liver_us":
        if bundle.classifier is None:
            raise ValueError(f"{bundle.root}: no classifier.pt to evaluate")
    elif "slice_index" in frame.columns:
        if "lesion_mask" not in frame.columns or frame["lesion_mask"].isna().all():
            found = ", ".join(f"{k} ({v})" for k, v in frame["label"].value_counts().sort_index().items())
            raise ValueError(f"{csv}: ct-liver evaluation needs reference liver-lesion outlines (a lesion_mask "
                             f"column) to score detection and classification; this folder has none "
                             f"(labels: {found}). For a second opinion without outlines use lesiondx predict")
        if lesion_types and classifier == "features":
            raise ValueError(f"{manifest.root}: lesion-type evaluation scores class probabilities; the 'features' "
                             "characterisation gives none (use classifier 'lilnet')")
    else:
        raise ValueError(f"{manifest.root}: not a folder this task can evaluate (layout {manifest.layout.name})")


def predict(inputs: list[Path], model: str = "default", out: Path | None = None, **options: Any) -> dict:
    """Analyse studies (DICOM series folders, slice-image folders or single images); several inputs are
    phases of one patient (``phases=[...]`` names them, else DICOM tag keywords, else aorta / portal-vein
    enhancement; never file names); phases are aligned by translation onto the first input. ``classifier``:
    ``features`` (default: measured enhancement features, no probabilities) or ``lilnet``. ``window``: the display
    window 8-bit slices were exported with (preset name or ``"center,width"`` in HU), or ``"auto"`` (the
    default): estimated from the slices' fat and muscle peaks (abdomen W 400 L 40 when that cannot be told).
    The JSON's ``window_assumed`` says which window was used, why, and what the image suggests (``estimate``).

    Returns ``{"lesions": [{"slice", "box", "score", "inside_liver", "probabilities", "phase", "study"}],
    "findings": [{"id", "slices", "box", "size_mm", "location", "phases", "features": [...], "evidence"}],
    "patient": {...}, "overlays": [...], "cams": [...], "detector", "liver_filter", "model_version", ...}``.
    """
    if not inputs:
        raise ValueError("give at least one study (DICOM series folder or folder of slice images)")
    as_series = bool(options.pop("series", False)) and len(inputs) > 1
    if len(inputs) > 1 and not as_series and not options.get("phases") and all(Path(p).is_file() for p in inputs):
        return _predict_each(list(map(Path, inputs)), model, out, options)
    start = time.time()
    clock = Stopwatch()
    bundle: Bundle = load_bundle(model)
    out = Path(out) if out is not None else None
    result: dict[str, Any] = {"model_version": bundle.version, "model": str(bundle.root), "lesions": [], "overlays": [],
                              "cams": [], "studies": []}
    window = parse_window_option(options.get("window") or DEFAULT_EXPORT_WINDOW)  # a bad one fails here
    bundle = with_classifier(bundle, options.get("classifier"))
    if as_series:  # several files the user says are one series
        readers = [(Path(inputs[0]).parent, lambda: read_series_files(list(inputs)))]
        timed: list = [None]
    else:
        readers = [(p, lambda p=p: read_study(p) if p.is_dir() else read_image(p)) for p in map(Path, inputs)]
        with clock.stage("phases"):
            tags = [series_tags(p) for p in inputs]
            check_phase_set(list(map(Path, inputs)), tags)  # same series twice, other patient / study: refused
            timed = phases_by_time(tags)
    given_phases = given_phase_list(options.get("phases"), len(readers))
    series: list[Series] = []
    verdicts = []
    clock.total = len(readers)
    for i, (path, read) in enumerate(track(readers, "ct-liver series analysed")):
        clock.series, clock.done = f"series {i + 1}/{len(readers)} ({path.name})", i
        with clock.stage("decode"):
            image = read()
            verdicts.append(require("ct-liver", image, path))  # refuses ultrasound, MR, chest-only... before any model
            result.setdefault("input_warnings", []).extend(image.warnings)
            study = from_image(image, path.name, window=window)
            study = replace(study, study_id=admit_series(path, study.study_id, study.hu,
                                                         [(s.study_id, s.hu) for s in series]))
        read_as = None
        if not study.hu_exact:  # 8-bit slices: say which window their HU were recovered with, and why
            w = study.export_window
            est = study.window_estimate
            read_as = {"center": round(w.center, 1), "width": round(w.width, 1), "source": study.export_window_source,
                       "estimate": ({"center": round(est.window.center, 1), "width": round(est.window.width, 1)}
                                    if est is not None and est.window is not None
                                    else {"reason": est.reason if est is not None else "not estimated"})}
            result["window_assumed"] = read_as
        with clock.stage("liver"):
            liver = liver_mask(study, bundle)
            verdicts[-1] = with_check(verdicts[-1], field_of_view_check(study.hu, liver[0], study.spacing_mm))
            verdicts[-1] = with_check(verdicts[-1], craniocaudal_check(liver[0], study.spacing_mm))
        given = given_phases[i] if i < len(given_phases) else None
        with clock.stage("phases"):
            call = series_phase(study, given, timed[i], liver[0])
        study = replace(study, phase=call.phase)
        result.setdefault("input_warnings", []).extend([f"{path.name}: {call.warning}"] if call.warning else [])
        with clock.stage("candidates"):
            parts = detect_parts(study, bundle, liver)
        with clock.stage("outputs"):
            res = analyse(study, bundle, out, parts=parts)
        flags = [les["inside_liver"] for les in res["lesions"]]
        series.append(Series(study.study_id, study.phase, study.hu, parts.liver, study.spacing_mm or 0.75,
                             tuple(d for d, f in zip(parts.found, flags) if f), study.slice_mm,
                             study.spacing_mm is not None, study.spacing_estimated, study.orientation,
                             position_gaps(image.positions)))
        result["lesions"] += [{**les, "study": study.study_id} for les in res["lesions"]]
        result["overlays"] += res["overlays"]
        result["cams"] += res["cams"]
        result["studies"].append({"study": study.study_id, "phase": study.phase, "n_slices": study.n_slices,
                                  "phase_source": call.source, "phase_reason": call.reason,
                                  "pixel_spacing_mm": study.spacing_mm, "spacing_estimated": study.spacing_estimated,
                                  "gate": verdicts[-1].to_dict(),
                                  **({"window_assumed": read_as} if read_as else {})})
        result["detector"], result["liver_filter"] = res["detector"], res["liver_filter"]
        result["location_basis"] = res["location_basis"]
    result.setdefault("input_warnings", []).extend(repeated_phases([(s.study_id, s.phase) for s in series]))
    result |= result_fields(verdicts, result.get("input_warnings", []))
    clock.series, clock.done = "", len(readers)
    with clock.stage("alignment"):
        aligned = align(series)
    with clock.stage("characterisation"):
        result["findings"] = findings(series, aligned)
    result["patient"] = _patient(result["lesions"], bundle, result["findings"])
    if str(model) == "default":
        result["note"] = SHIPPED_NOTE
    result["seconds"] = round(time.time() - start, 2)
    result["stage_seconds"] = clock.times().as_dict()
    if out is not None:
        write_json(out / "predictions.json", result)
    return result


def _predict_each(inputs: list[Path], model: str, out: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    """Several image files given without ``series`` or ``phases``: each is its own slice-study (as LiLNet's web
    version takes them), never stacked into a series of unrelated slices. A file that cannot be read or is refused
    is reported in its entry; the others still run. Overlays go to ``out/NNN-<name>/``."""
    start = time.time()
    results = []
    for index, path in enumerate(inputs, start=1):
        sub_out = out / f"{index:03d}-{path.stem}" if out is not None else None
        try:
            results.append({"input": path.name, **predict([path], model, sub_out, **options)})
        except (ImageReadError, ValueError) as exc:
            results.append({"input": path.name, "error": str(exc)})
    result = {"separate_studies": True, "n_inputs": len(inputs), "results": results,
              "n_failed": sum("error" in r for r in results),
              "note": f"{len(inputs)} image files were read as {len(inputs)} separate slice-studies; if they are the "
                      "slices of one series say so (series=True, CLI --series), if they are phases of one patient "
                      "name the phases (phases=[...])",
              "seconds": round(time.time() - start, 2)}
    if out is not None:
        write_json(out / "predictions.json", result)
    return result


def with_classifier(bundle: Bundle, classifier: str | None) -> Bundle:
    """``bundle`` with ``classifier`` (``features`` / ``lilnet``; ``None`` keeps the model's config) set."""
    if classifier:
        if classifier not in ("features", "lilnet"):
            raise ValueError(f"classifier must be 'features' or 'lilnet', got {classifier!r}")
        bundle = replace(bundle, cfg=replace(bundle.cfg, classifier=classifier))
    if bundle.cfg.classifier == "lilnet" and bundle.classifier is None:
        raise ValueError(f"{bundle.root}: classifier 'lilnet' asked for but the model has no classifier.pt")
    return bundle


def given_phase_list(phases: list[str] | None, n_inputs: int) -> list[str]:
    """The user's phase names, one per input in order (fewer: the rest are identified); unknown names or
    more names than inputs are refused."""
    given = [str(p) for p in (phases or [])]
    bad = [p for p in given if p not in PHASES]
    if bad:
        raise ValueError(f"unknown phase {bad[0]!r}; choose from {', '.join(PHASES)}")
    if len(given) > n_inputs:
        raise ValueError(f"{len(given)} phases given for {n_inputs} input(s): give at most one phase per input")
    return given


def _patient(lesions: list[dict], bundle: Bundle, found: list[dict]) -> dict[str, Any]:
    """Patient result: the characterised lesions' patterns (default) or, with ``classifier: lilnet``, the
    softmax-mean aggregation of class probabilities over inside-liver boxes, slices and phases."""
    import pandas as pd

    inside = [les for les in lesions if les["inside_liver"]]
    out: dict[str, Any] = {"n_lesion_boxes": len(lesions), "n_inside_liver": len(inside),
                           "phases": sorted({str(les.get("phase")) for les in inside}),
                           "location": max(inside, key=lambda les: les["score"]).get("location") if inside else None}
    patterns = [(f["id"], f["evidence"]) for f in found]
    side = lambda group: [{"finding": i, "pattern": e["pattern"]}  # noqa: E731
                          for i, e in patterns if e["benign_malignant"] == group]
    out["evidence"] = {
        "malignant_patterns": side("malignant"),
        "benign_patterns": side("benign"),
        "indeterminate": [i for i, e in patterns if e["pattern"] is None],
        "kind": "rule-table evidence from measured enhancement features (see findings), not a probability"}
    if not uses_lilnet(bundle) or not inside:
        out["probabilities"] = None
        if not uses_lilnet(bundle):
            out["probabilities_note"] = ("no class probabilities: the default characterises lesions by measured "
                                         "enhancement features; classifier: lilnet uses a classifier trained on labelled CT")
        return out
    classes = list(bundle.classes)
    table = pd.DataFrame([{"patient_id": "patient", **{c: les["probabilities"][c] for c in classes}} for les in inside])
    agg = patient_probabilities(table, classes)
    probs = agg[classes].to_numpy()
    out["probabilities"] = bundle.tree.describe(probs, bundle.level)[0]
    out["predicted"] = str(agg["predicted"].iloc[0])
    out["aggregation"] = "softmax of the mean log-probability over all inside-liver boxes, slices and phases"
    return out
