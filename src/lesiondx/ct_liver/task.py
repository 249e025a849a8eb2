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
from typing import Any

import numpy as np
import torch
import yaml

from lesiondx.config import config_to_dict
from lesiondx.data import load_manifest
from lesiondx.gate import require, result_fields
from lesiondx.io import parse_window_option, read_image, read_study
from lesiondx.models import save_checkpoint

from .config import CtLiverConfig, load
from .label_tree import LabelTree
from .multiphase import patient_probabilities
from .pipeline import Bundle, analyse, box_crop, classifier_input, load_bundle, save_classifier, write_json
from .study import DEFAULT_EXPORT_WINDOW, Study, from_image, labelled_studies

SHIPPED_NOTE = ("default model: HU-rule liver filter + rule-based detector of hypodense lesions >= 5 mm on "
                "contrast-enhanced (portal-venous) CT; iso- or hyperdense lesions are missed (no learned detector ships: "
                "the only boxes we have are IRCADb's, CC BY-NC-ND); classifier trained on AUL ultrasound lesions, "
                "NOT validated on CT — its probabilities are a research demonstration, not a diagnosis")


def _log(run: Path):
    def log(msg: str) -> None:
        line = f"{_dt.datetime.now().strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(run / "train.log", "a") as fh:
            fh.write(line + "\n")
    return log


def _patient_labels(folder: Path) -> dict[str, str]:
    frame = load_manifest(folder).frame
    return {str(p): str(rows["label"].iloc[0]) for p, rows in frame.groupby("patient_id")}


def _is_lesion_type_folder(folder: Path, cfg: CtLiverConfig) -> bool:
    labels = set(load_manifest(folder).frame["label"].astype(str))
    tree = LabelTree.from_mapping(cfg.label_tree)
    return labels <= set(tree.top) | set(tree.leaves)


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


def train(data: Path, out: Path, config: Path | None = None, **overrides: Any) -> Path:
    """Train what the folder supports (see module doc) into run dir ``out``; returns it."""
    cfg = load(config, **overrides)
    data, run = Path(data), Path(out)
    run.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, cfg.threads))
    (run / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    log = _log(run)
    manifest = load_manifest(data)
    meta: dict[str, Any] = {"data": str(data), "layout": manifest.layout.name, "date": _dt.date.today().isoformat(),
                            "version": f"{run.name}-{_dt.date.today().isoformat()}"}
    if manifest.layout.name == "aul_liver_us":
        from .recipe import aul_crops, train_classifier

        crops = aul_crops(data, cfg)
        model, level = train_classifier(crops.crops, list(crops.table["label"]), cfg, log=log)
        save_classifier(run / "classifier.pt", model, cfg, level, {**meta, "trained_on": "AUL ultrasound lesion crops"})
        meta.update(level=level, n_crops=len(crops.table))
    elif "slice_index" in manifest.frame.columns and _is_lesion_type_folder(data, cfg):
        from .recipe import train_classifier

        studies = labelled_studies(data)
        crops, labels = ct_lesion_crops(studies, _patient_labels(data), cfg)
        model, level = train_classifier(crops, labels, cfg, log=log)
        save_classifier(run / "classifier.pt", model, cfg, level, {**meta, "trained_on": f"CT lesion crops from {data.name}"})
        meta.update(level=level, n_crops=len(labels))
    elif "slice_index" in manifest.frame.columns:
        meta.update(train_ircadb(data, run, cfg, log=log))
        meta["licence_note"] = "weights trained on this folder inherit its licence; IRCADb-derived weights must not be redistributed"
    else:
        raise ValueError(f"{data}: neither an AUL-layout nor a CT slice folder (layout {manifest.layout.name})")
    write_json(run / "meta.json", meta)
    log(f"run dir {run}")
    return run


def evaluate(model: str, data: Path, out: Path) -> dict:
    """Evaluate ``model`` (run dir or "default") on a labelled folder; writes ``metrics.json`` (and for
    benign/malignant folders ``report.html``) to ``out``. Never evaluate on the data a run trained on."""
    bundle = load_bundle(model)
    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, bundle.cfg.threads))
    manifest = load_manifest(data)
    metrics: dict[str, Any] = {"model_version": bundle.version, "data": str(data)}
    if manifest.layout.name == "aul_liver_us":
        from lesiondx.stats import write_report

        from .classifier import predict_proba
        from .recipe import aul_crops

        if bundle.classifier is None:
            raise ValueError(f"{bundle.root}: no classifier.pt to evaluate")
        crops = aul_crops(data, replace(bundle.cfg))
        probs = bundle.tree.top_probabilities(predict_proba(bundle.classifier, crops.crops, bundle.cfg.crop_px), bundle.level)
        table = crops.table.assign(score=probs[:, bundle.tree.top.index("malignant")])
        table.to_csv(out / "predictions.csv", index=False)
        report = write_report(table, out, positive="malignant", title="ct-liver classifier on AUL lesion crops")
        metrics.update(report.metrics)
    elif "slice_index" in manifest.frame.columns:
        from .evaluation import evaluate_classification, evaluate_ct

        studies = labelled_studies(data)
        if _is_lesion_type_folder(data, bundle.cfg):
            metrics["classification"] = evaluate_classification(studies, _patient_labels(data), bundle)
        else:
            metrics.update(evaluate_ct(data, studies, bundle))
    else:
        raise ValueError(f"{data}: not a folder this task can evaluate (layout {manifest.layout.name})")
    write_json(out / "metrics.json", metrics)
    return json.loads((out / "metrics.json").read_text())


def _phase_of(study: Study, path: Path, phases: list[str] | None, index: int) -> str | None:
    if phases and index < len(phases):
        return phases[index]
    if study.phase:
        return study.phase
    name = path.name.lower()
    for key, phase in (("art", "arterial"), ("ap", "arterial"), ("portal", "portal-venous"), ("pv", "portal-venous"),
                       ("ven", "portal-venous"), ("delay", "delayed")):
        if key in name.replace("-", "_").split("_") or name.startswith(key):
            return phase
    return None


def predict(inputs: list[Path], model: str = "default", out: Path | None = None, **options: Any) -> dict:
    """Analyse studies (DICOM series folders, slice-image folders or single images); several inputs are
    phases of one patient (``phases=[...]`` names them, else DICOM tags / folder names). ``window``: the display
    window 8-bit slices were exported with (preset name or ``"center,width"`` in HU), or ``"auto"`` (the
    default): estimated from the slices' fat and muscle peaks (abdomen W 400 L 40 when that cannot be told).
    The JSON's ``window_assumed`` says which window was used, why, and what the image suggests (``estimate``).

    Returns ``{"lesions": [{"slice", "box", "score", "inside_liver", "probabilities", "phase", "study"}],
    "patient": {...}, "overlays": [...], "cams": [...], "detector", "liver_filter", "model_version", ...}``.
    """
    if not inputs:
        raise ValueError("give at least one study (DICOM series folder or folder of slice images)")
    start = time.time()
    bundle: Bundle = load_bundle(model)
    out = Path(out) if out is not None else None
    result: dict[str, Any] = {"model_version": bundle.version, "model": str(bundle.root), "lesions": [], "overlays": [],
                              "cams": [], "studies": []}
    window = parse_window_option(options.get("window") or DEFAULT_EXPORT_WINDOW)  # a bad one fails here
    verdicts = []
    for i, path in enumerate(map(Path, inputs)):
        image = read_study(path) if path.is_dir() else read_image(path)
        verdicts.append(require("ct-liver", image, path))  # refuses ultrasound, MR, chest-only... before any model
        result.setdefault("input_warnings", []).extend(image.warnings)
        study = from_image(image, path.name, window=window)
        read_as = None
        if not study.hu_exact:  # 8-bit slices: say which window their HU were recovered with, and why
            w = study.export_window
            est = study.window_estimate
            read_as = {"center": round(w.center, 1), "width": round(w.width, 1), "source": study.export_window_source,
                       "estimate": ({"center": round(est.window.center, 1), "width": round(est.window.width, 1)}
                                    if est is not None and est.window is not None
                                    else {"reason": est.reason if est is not None else "not estimated"})}
            result["window_assumed"] = read_as
        study = replace(study, phase=_phase_of(study, path, options.get("phases"), i))
        res = analyse(study, bundle, out)
        result["lesions"] += [{**les, "study": study.study_id} for les in res["lesions"]]
        result["overlays"] += res["overlays"]
        result["cams"] += res["cams"]
        result["studies"].append({"study": study.study_id, "phase": study.phase, "n_slices": study.n_slices,
                                  "gate": verdicts[-1].to_dict(),
                                  **({"window_assumed": read_as} if read_as else {})})
        result["detector"], result["liver_filter"] = res["detector"], res["liver_filter"]
    result |= result_fields(verdicts, result.get("input_warnings", []))
    result["patient"] = _patient(result["lesions"], bundle)
    if str(model) == "default":
        result["note"] = SHIPPED_NOTE
    result["seconds"] = round(time.time() - start, 2)
    if out is not None:
        write_json(out / "predictions.json", result)
    return result


def _patient(lesions: list[dict], bundle: Bundle) -> dict[str, Any]:
    """Patient result from lesions inside the liver: softmax-mean aggregation over slices and phases."""
    import pandas as pd

    inside = [les for les in lesions if les["inside_liver"]]
    out: dict[str, Any] = {"n_lesion_boxes": len(lesions), "n_inside_liver": len(inside),
                           "phases": sorted({str(les.get("phase")) for les in inside})}
    if bundle.classifier is None or not inside:
        out["probabilities"] = None
        return out
    classes = list(bundle.classes)
    table = pd.DataFrame([{"patient_id": "patient", **{c: les["probabilities"][c] for c in classes}} for les in inside])
    agg = patient_probabilities(table, classes)
    probs = agg[classes].to_numpy()
    out["probabilities"] = bundle.tree.describe(probs, bundle.level)[0]
    out["predicted"] = str(agg["predicted"].iloc[0])
    out["aggregation"] = "softmax of the mean log-probability over all inside-liver boxes, slices and phases"
    return out
