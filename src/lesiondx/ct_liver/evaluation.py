"""Evaluation on labelled CT folders: liver Dice, detection P/R/F1 at IoU 0.1/0.3/0.5 for every
available detector side by side, the liver filter on extrahepatic masses, and lesion classification
(per phase and combined) from reference lesion masks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesiondx.data import Box, read_lesion_table
from lesiondx.models import dice_score
from lesiondx.stats import detection_prf, wilson_ci

from .candidates import Detection
from .detector import lesion_boxes
from .liver import chains, hu_liver_mask, liver_flags
from .multiphase import multiphase_metrics
from .phases import series_phase
from .pipeline import Bundle, box_crop, classify, liver_mask, rule_candidates
from .study import Study, as_windowed

IOUS = (0.1, 0.3, 0.5)


def liver_values(folder: Path, patient: str, label_map: np.ndarray) -> tuple[list[int], list[int]]:
    """Lesion values inside / outside the liver for one patient (``lesions.csv`` ``inside_liver``;
    without the table every value counts as a liver lesion)."""
    values = [int(v) for v in np.unique(label_map) if v > 0]
    table = read_lesion_table(folder)
    if table is None or "inside_liver" not in table.columns:
        return values, []
    rows = table[table["patient_id"].astype(str) == patient]
    outside = {int(v) for v, inside in zip(rows["lesion_value"], rows["inside_liver"]) if not int(inside)}
    return [v for v in values if v not in outside], [v for v in values if v in outside]


def _prf(dets: list[Detection], truth: list[list[Box]], thr: float) -> dict:
    """Slice-level P/R/F1 per IoU threshold with Wilson CIs (``dets[i].slice`` indexes ``truth``)."""
    n = len(truth)
    pb = [[d.box.as_list() for d in dets if d.slice == z] for z in range(n)]
    ps = [[d.score for d in dets if d.slice == z] for z in range(n)]
    tb = [[b.as_list() for b in t] for t in truth]
    out = {}
    for iou, r in detection_prf(pb, ps, tb, IOUS, thr).items():
        rec = wilson_ci(r.tp, r.tp + r.fn) if r.tp + r.fn else None
        prec = wilson_ci(r.tp, r.tp + r.fp) if r.tp + r.fp else None
        out[str(iou)] = {"tp": r.tp, "fp": r.fp, "fn": r.fn, "precision": r.precision, "recall": r.recall, "f1": r.f1,
                         "precision_ci": [prec.ci_low, prec.ci_high] if prec else None,
                         "recall_ci": [rec.ci_low, rec.ci_high] if rec else None}
    return out


def lesion_recall(dets: list[Detection], label_map: np.ndarray, values: list[int], iou: float = 0.1) -> dict[str, Any]:
    """Lesion-level recall: a lesion counts as found when a kept box overlaps one of its slice boxes by
    IoU ≥ ``iou`` on any slice (Wilson CI over lesions)."""
    found = []
    for v in values:
        hit = any(d.box.iou(b) >= iou for d in dets for b in lesion_boxes(label_map[d.slice], [v]))
        found.append(bool(hit))
    ci = wilson_ci(sum(found), len(found)) if found else None
    return {"found": int(sum(found)), "lesions": len(found), "recall": sum(found) / len(found) if found else None,
            "recall_ci": [ci.ci_low, ci.ci_high] if ci else None, "per_lesion": dict(zip(map(str, values), found))}


def evaluate_detection(folder: Path, studies: list[Study], detectors: dict[str, Callable[[Study, np.ndarray], list[Detection]]],
                       liver_of: Callable[[Study], np.ndarray], thr: float, min_fraction: float,
                       edge_claw: bool = False) -> dict[str, Any]:
    """Per detector: slice-level P/R/F1 per patient and pooled over patients (one box per lesion part
    per slice; Wilson CIs treat boxes as independent, which consecutive slices of one lesion are not,
    so they are optimistic), lesion-level recall, false boxes per slice, false lesions (chains of kept
    boxes of which no box hits a truth box, IoU ≥ 0.1) per patient, and how many boxes on
    extrahepatic masses the liver filter kept."""
    result: dict[str, Any] = {"studies": [s.study_id for s in studies], "score_threshold": thr,
                              "inside_liver_fraction": min_fraction, "edge_claw": edge_claw, "detectors": {}}
    pooled: dict[str, tuple[list, list]] = {name: ([], []) for name in detectors}
    per_patient: dict[str, dict[str, Any]] = {name: {} for name in detectors}
    for study in studies:
        liver = liver_of(study)
        inside_vals, outside_vals = liver_values(folder, study.patient_id, study.lesion)
        truth = [lesion_boxes(sl, inside_vals) for sl in study.lesion]
        extra = [lesion_boxes(sl, outside_vals) for sl in study.lesion]
        for name, fn in detectors.items():
            dets = [d for d in fn(study, liver) if d.score >= thr]
            flags = liver_flags(dets, liver, min_fraction, edge_claw)
            kept = [d for d, f in zip(dets, flags) if f]
            on_extra = [f for d, f in zip(dets, flags) if any(d.box.iou(b) >= 0.1 for b in extra[d.slice])]
            prf = _prf(kept, truth, thr)
            ids = [d.component if d.component >= 0 else -1 - c for d, c in
                   zip(kept, chains([d.slice for d in kept], [d.box for d in kept]))]
            hit = {i for d, i in zip(kept, ids) if any(d.box.iou(b) >= 0.1 for b in truth[d.slice])}
            per_patient[name][study.study_id] = {
                "slices": study.n_slices, "boxes_kept": len(kept), "boxes_dropped_by_liver_filter": len(dets) - len(kept),
                "false_boxes_per_slice_iou0.1": prf["0.1"]["fp"] / max(1, study.n_slices), "slice_level": prf,
                "candidate_lesions": len(set(ids)), "false_lesions_iou0.1": len(set(ids) - hit),
                "lesion_level_iou0.1": lesion_recall(kept, study.lesion, inside_vals),
                "boxes_on_extrahepatic_masses": len(on_extra), "kept_on_extrahepatic_masses": int(sum(on_extra))}
            offset = len(pooled[name][1])
            pooled[name][0].extend(replace(d, slice=d.slice + offset) for d in kept)
            pooled[name][1].extend(truth)
    for name, (dets, truth) in pooled.items():
        result["detectors"][name] = {"pooled_after_liver_filter": _prf(dets, truth, thr), "per_patient": per_patient[name]}
    return result


def evaluate_liver(studies: list[Study], bundle: Bundle) -> dict[str, Any]:
    """Dice per study of the HU rule and (when present) the bundle's learned liver model."""
    out: dict[str, Any] = {}
    for study in studies:
        if study.liver is None or not study.liver.any():
            continue
        row = {"hu-rule": dice_score(hu_liver_mask(study.hu, study.spacing_mm, low=bundle.cfg.liver_hu_low,
                                             high=bundle.cfg.liver_hu_high), study.liver)}
        if bundle.liver_net is not None:
            row["unet"] = dice_score(liver_mask(study, bundle)[0], study.liver)
        out[study.study_id] = row
    return out


def evaluate_ct(folder: Path, studies: list[Study], bundle: Bundle) -> dict[str, Any]:
    """Liver Dice + detection for the rule-based candidates and, if the bundle has one, the learned detector."""
    cfg = bundle.cfg

    detectors: dict[str, Callable] = {"hu-candidates": lambda study, liver: rule_candidates(study, liver, cfg)}
    if bundle.detector is not None:
        from .detector import detect

        detectors["faster-rcnn-lite0"] = lambda study, liver: detect(bundle.detector, study.grey)
    livers = {s.study_id: liver_mask(s, bundle)[0] for s in studies}
    calls = {s.study_id: series_phase(s, None, None, livers[s.study_id]) for s in studies}
    # a study whose labels.csv names no phase gets the phase predict identifies (aorta / portal-vein HU), so
    # evaluate searches what predict searches (hyperdense lesions in an arterial series)
    studies = [replace(s, phase=calls[s.study_id].phase) for s in studies]
    liver_of = lambda s: livers[s.study_id] if s.hu_exact else liver_mask(s, bundle)[0]  # noqa: E731 (windowed: its own HU)
    windowed = [as_windowed(s) for s in studies]
    return {"phases": {k: {"phase": c.phase, "source": c.source, "reason": c.reason} for k, c in calls.items()},
            "liver_dice": evaluate_liver(studies, bundle),
            "detection": evaluate_detection(folder, studies, detectors, liver_of, cfg.score_threshold,
                                            cfg.inside_liver_fraction, cfg.edge_claw),
            "detection_windowed_slices": {
                "input": "8-bit abdomen-window slices (as PNG/JPG), HU from the inverted window, pixel spacing "
                         "estimated from the body width",
                "spacing_estimated_mm": {s.study_id: s.spacing_mm for s in windowed},
                **evaluate_detection(folder, windowed, detectors, liver_of, cfg.score_threshold,
                                    cfg.inside_liver_fraction, cfg.edge_claw)}}


def lesion_table(studies: list[Study], labels: dict[str, str], bundle: Bundle) -> pd.DataFrame:
    """One row per (study, slice, lesion part) with class probabilities from reference lesion masks."""
    rows, crops = [], []
    for study in studies:
        for z, sl in enumerate(study.lesion):
            for box in lesion_boxes(sl):
                crops.append(box_crop(study.grey[z], box, bundle.cfg))
                rows.append({"patient_id": study.patient_id, "phase": study.phase or "single", "slice": z,
                             "label": labels[study.patient_id]})
    probs = classify(crops, bundle)
    table = pd.DataFrame(rows)
    for j, c in enumerate(bundle.classes):
        table[c] = probs[:, j] if len(probs) else []
    return table


def evaluate_classification(studies: list[Study], labels: dict[str, str], bundle: Bundle) -> dict[str, Any]:
    """Per-phase and combined patient-level classification (label level mapped to the trained level)."""
    if bundle.classifier is None:
        raise ValueError(f"{bundle.root}: no classifier.pt in this model folder")
    tree = bundle.tree
    mapped = {p: (lab if lab in bundle.classes else tree.parent_of(lab)) for p, lab in labels.items()}
    table = lesion_table(studies, mapped, bundle)
    return {"level": bundle.level, "n_lesion_crops": int(len(table)),
            **multiphase_metrics(table, bundle.classes, label="label", phase="phase")}
