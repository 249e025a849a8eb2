"""Lesion-insertion study for the ct-liver rule-based detector (BENCHMARKS.md ct-liver §4).

The shared IRCADb patients hold no lesion brighter than its liver by the detector's 15 HU floor (p01's tumours
are hypodense on its portal-venous CT; p07 has no liver lesion), so hyperdense detection cannot be shown on them
as they are. This script inserts **SYNTHETIC** spherical lesions into the **real** CT (in memory: nothing is
written, IRCADb is CC BY-NC-ND; :mod:`lesiondx.ct_liver.insertion`) and runs the shipped default detector + liver filter unchanged:

* a lesion of diameter D mm is added as ``HU + delta`` over a sphere (1-voxel linear edge), so the patient's own
  noise and texture stay inside it; delta > 0 (hyperdense) studies are declared ``arterial`` (the default searches
  brighter-than-liver regions in arterial series only), delta < 0 (hypodense) ``portal-venous``;
* centres are drawn (seeded) inside the IRCADb reference liver mask eroded by the radius + 5 mm, at least 10 mm from
  any reference lesion and 2 D from each other, ``PER_RUN`` lesions per run;
* found = a kept box (after the liver filter) with IoU ≥ 0.3 against the lesion's box on any of its slices
  (the evaluation's lesion-level rule, :func:`lesiondx.ct_liver.evaluation.lesion_recall`);
* extra boxes = kept boxes that touch no inserted lesion (IoU < 0.1), compared with the same study and phase
  declaration without insertion (the detector's own false/true findings on the real anatomy).

Nothing here was tuned: every detector setting is the shipped ``config.yaml``; the grid (sizes, contrasts,
seeds) was written before the first run. The backgrounds are not blind (p01/p07 were looked at while building the
detector).

    OMP_NUM_THREADS=1 python benchmarks/ct_liver_insertion.py /work/shared/data/liver_ircadb01_p01_p07
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lesiondx.ct_liver.detector import lesion_boxes
from lesiondx.ct_liver.evaluation import lesion_recall
from lesiondx.ct_liver.insertion import insertion_centres, with_inserted_lesions
from lesiondx.ct_liver.liver import liver_flags
from lesiondx.ct_liver.pipeline import detect_parts, load_bundle
from lesiondx.ct_liver.study import Study, labelled_studies
from lesiondx.stats import wilson_ci

DIAMETERS_MM = (10.0, 20.0, 30.0)
DELTAS_HU = (-50.0, -25.0, 25.0, 50.0)
SEEDS = (0, 1)
PER_RUN = 3


def kept_detections(study: Study, bundle) -> list:
    parts = detect_parts(study, bundle)
    flags = liver_flags(parts.found, parts.liver, bundle.cfg.inside_liver_fraction, bundle.cfg.edge_claw)
    return [d for d, f in zip(parts.found, flags) if f]


def extra_boxes(kept: list, labels: np.ndarray) -> int:
    """Kept boxes touching no inserted lesion (IoU < 0.1 with every inserted lesion box on their slice)."""
    return sum(1 for d in kept if not any(d.box.iou(b) >= 0.1 for b in lesion_boxes(labels[d.slice])))


def run(folder: Path) -> dict:
    bundle = load_bundle("default")
    studies = labelled_studies(folder)
    baseline: dict[tuple[str, str], int] = {}
    cells: dict[str, dict] = {}
    t0 = time.perf_counter()
    for study in studies:
        for phase in ("arterial", "portal-venous"):
            plain = replace(study, phase=phase, lesion=np.zeros(study.hu.shape, np.int32))
            baseline[(study.study_id, phase)] = len(kept_detections(plain, bundle))
    for diameter in DIAMETERS_MM:
        for delta in DELTAS_HU:
            phase = "arterial" if delta > 0 else "portal-venous"
            found, total, extra, base = 0, 0, 0, 0
            for study in studies:
                for seed in SEEDS:
                    rng = np.random.default_rng([seed, int(diameter), int(delta) + 1000, len(study.study_id)])
                    centres = insertion_centres(study, diameter / 2, PER_RUN, rng)
                    inserted = with_inserted_lesions(study, centres, diameter / 2, delta, phase)
                    kept = kept_detections(inserted, bundle)
                    values = sorted(int(v) for v in np.unique(inserted.lesion) if v > 0)
                    hit = lesion_recall(kept, inserted.lesion, values, iou=0.3)
                    found, total = found + hit["found"], total + hit["lesions"]
                    extra += extra_boxes(kept, inserted.lesion)
                    base += baseline[(study.study_id, phase)]
            ci = wilson_ci(found, total)
            cells[f"{diameter:g} mm, {delta:+g} HU ({phase})"] = {
                "found": found, "inserted": total, "recall": round(found / total, 3),
                "recall_ci": [round(ci.ci_low, 3), round(ci.ci_high, 3)], "extra_boxes": extra,
                "boxes_without_insertion": base}
            print(f"{diameter:>4g} mm {delta:+4g} HU {phase:<13} found {found}/{total} "
                  f"({ci.ci_low:.2f}-{ci.ci_high:.2f})  other kept boxes {extra} (without insertion {base})",
                  flush=True)
    return {"studies": [s.study_id for s in studies], "per_run": PER_RUN, "seeds": list(SEEDS),
            "baseline_kept_boxes": {f"{k[0]} {k[1]}": v for k, v in baseline.items()}, "cells": cells,
            "seconds": round(time.perf_counter() - t0, 1)}


if __name__ == "__main__":
    print(json.dumps(run(Path(sys.argv[1])), indent=1))
