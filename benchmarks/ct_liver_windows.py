"""Windowed-slice detection on IRCADb studies re-exported with other display windows (8-bit, rounded),
read (a) as the default abdomen window W 400 / L 40 and (b) with the window they were exported with.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/ct_liver_windows.py ../shared/data/liver_ircadb01_p01_p07 OUT.json

Reads the IRCADb files in place (CC BY-NC-ND: nothing is written but the JSON of figures).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lesiondx.ct_liver.evaluation import evaluate_detection
from lesiondx.ct_liver.pipeline import load_bundle, liver_mask, rule_candidates
from lesiondx.ct_liver.study import WINDOW, as_windowed, labelled_studies

WINDOWS = [(40, 400), (40, 350), (50, 350), (60, 300), (60, 400), (50, 450), (50, 500)]  # (level, width) HU


def main(folder: Path, out: Path) -> None:
    bundle = load_bundle("default")
    cfg = bundle.cfg
    studies = labelled_studies(folder)
    rows = {}
    for level, width in WINDOWS:
        for mode, read_as in (("default", WINDOW), ("given", (level, width))):
            if mode == "given" and (level, width) == (40, 400):
                continue
            result = evaluate_detection(folder, [as_windowed(s, (level, width), read_as) for s in studies],
                                        {"rule": lambda st, lv: rule_candidates(st, lv, cfg)},
                                        lambda st: liver_mask(st, bundle)[0], cfg.score_threshold,
                                        cfg.inside_liver_fraction)["detectors"]["rule"]
            per = result["per_patient"]
            row = {f"f1_iou{k}": result["pooled_after_liver_filter"][k]["f1"] for k in ("0.1", "0.3", "0.5")}
            row["lesions_found"] = {k: v["lesion_level_iou0.1"]["found"] for k, v in per.items()}
            row["false_lesions"] = {k: v["false_lesions_iou0.1"] for k, v in per.items()}
            rows[f"W{width} L{level} read as {mode}"] = row
            print(f"W{width} L{level} read as {mode}:", json.dumps(row), flush=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
