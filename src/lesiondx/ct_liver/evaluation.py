"""Evaluation on labelled CT folders: liver Dice, detection P/R/F1 at IoU 0.1/0.3/0.5 for every
available detector side by side, the liver filter on extrahepatic masses, and lesion classification
(per phase and combined) from reference lesion masks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesiondx.data import Box, read_lesion_table
from lesiondx.models import dice_score
from lesiondx.stats import detection_prf, wilson_ci

from .candidates import Detection, detect_candidates
from .detector import lesion_boxes
from .liver import chains, hu_liver_mask, inside_liver, vote_by_component
from .multiphase import multiphase_metrics
from .pipeline import Bundle, box_crop, classify, liver_mask
from .study import Study

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


def _prf(dets: list[Detection], truth: list[list[Box]], keep: Callable[[Detection], bool], thr: float) -> dict:
    n = len(truth)
    pb = [[d.box.as_list() for d in dets if d.slice == z and keep(d)] for z in range(n)]
    ps = [[d.score for d in dets if d.slice == z and keep(d)] for z in range(n)]
    tb = [[b.as_list() for b in t] for t in truth]
    out = {}
    for iou, r in detection_prf(pb, ps, tb, IOUS, thr).items():
        rec = wilson_ci(r.tp, r.tp + r.fn) if r.tp + r.fn else None
        prec = wilson_ci(r.tp, r.tp + r.fp) if r.tp + r.fp else None
        out[str(iou)] = {"tp": r.tp, "fp": r.fp, "fn": r.fn, "precision": r.precision, "recall": r.recall, "f1": r.f1,
                         "precision_ci": [prec.ci_low, prec.ci_high] if prec else None,
                         "recall_ci": [rec.ci_low, rec.ci_high] if rec else None}
    return out


def evaluate_detection(folder: Path, studies: list[Study], detectors: dict[str, Callable[[Study, np.ndarray], list[Detection]]],
                       liver_of: Callable[[Study], np.ndarray], thr: float, min_fraction: float) -> dict[str, Any]:
    """Per detector: slice-level P/R/F1 (boxes per lesion part, pooled over studies, Wilson CIs on
    precision and recall; slices are not independent, so CIs are optimistic), and how many boxes on
    extrahepatic masses the liver filter dropped."""
    result: dict[str, Any] = {"studies": [s.study_id for s in studies], "score_threshold": thr, "detectors": {}}
    per_det: dict[str, tuple[list, list, list]] = {name: ([], [], []) for name in detectors}
    for study in studies:
        liver = liver_of(study)
        inside_vals, outside_vals = liver_values(folder, study.patient_id, study.lesion)
        truth = [lesion_boxes(sl, inside_vals) for sl in study.lesion]
        extra = [lesion_boxes(sl, outside_vals) for sl in study.lesion]
        for name, fn in detectors.items():
            dets = [d for d in fn(study, liver) if d.score >= thr]
            voted = vote_by_component(chains([d.slice for d in dets], [d.box for d in dets]), [inside_liver(d.box, liver[d.slice], min_fraction) for d in dets])
            flags = {id(d): f for d, f in zip(dets, voted)}
            offset = len(per_det[name][1])
            per_det[name][0].extend(Detection(d.slice + offset, d.box, d.score) for d in dets if flags[id(d)])
            per_det[name][1].extend(truth)
            on_extra = [d for d in dets if any(d.box.iou(b) >= 0.1 for b in extra[d.slice])]
            per_det[name][2].append({"study": study.study_id, "boxes_on_extrahepatic_masses": len(on_extra),
                                     "dropped_by_liver_filter": sum(not flags[id(d)] for d in on_extra)})
    for name, (dets, truth, extra) in per_det.items():
        result["detectors"][name] = {"after_liver_filter": _prf(dets, truth, lambda d: True, thr), "extrahepatic": extra}
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

    def candidates(study: Study, liver: np.ndarray) -> list[Detection]:
        return detect_candidates(study.hu, liver, study.spacing_mm, min_contrast_hu=cfg.min_contrast_hu,
                                 min_mm=cfg.min_lesion_mm, max_mm=cfg.max_lesion_mm)

    detectors: dict[str, Callable] = {"hu-candidates": candidates}
    if bundle.detector is not None:
        from .detector import detect

        detectors["faster-rcnn-lite0"] = lambda study, liver: detect(bundle.detector, study.grey)
    return {"liver_dice": evaluate_liver(studies, bundle),
            "detection": evaluate_detection(folder, studies, detectors, lambda s: liver_mask(s, bundle)[0],
                                            cfg.score_threshold, cfg.inside_liver_fraction)}


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
