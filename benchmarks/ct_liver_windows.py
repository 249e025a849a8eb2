"""Windowed-slice detection on IRCADb studies re-exported with other display windows (8-bit, rounded),
read (a) as the abdomen window W 400 / L 40, (b) with the window they were exported with and (c) with the
window estimated from the slices themselves (``window="auto"``, fat and muscle peaks).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/ct_liver_windows.py ../shared/data/liver_ircadb01_p01_p07 OUT.json
    .venv/bin/python benchmarks/ct_liver_windows.py ../shared/data/liver_ircadb01_p01_p07 OUT.json --slabs

``--slabs``: instead, the window estimate's error (width, %) on random runs of 10–60 consecutive liver-level
slices and on whole volumes (the way a user may upload just the slices through the liver), and detection on
60-slice runs of the patient with lesions read the three ways (``slab_detection.json`` beside OUT).
``--files``: instead, PNG and JPEG (quality 90 / 75) slice files written to a temporary folder and read back the
way ``predict`` reads a folder (default window handling).

Reads the IRCADb files in place (CC BY-NC-ND: nothing is written but the JSON of figures).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from lesiondx.ct_liver.evaluation import evaluate_detection
from lesiondx.ct_liver.pipeline import load_bundle, liver_mask, rule_candidates
from lesiondx.ct_liver.study import WINDOW, as_windowed, labelled_studies
from lesiondx.io import AUTO, apply_window, estimate_window

WINDOWS = [(40, 400), (40, 350), (50, 350), (60, 300), (60, 400), (50, 450), (50, 500)]  # (level, width) HU


def detection_row(folder: Path, read: list, bundle) -> dict:
    """Pooled F1 at the three IoUs, lesions found and false lesions per patient, and the window each study was
    read with, for the shipped detector and liver filter on studies already read from 8-bit slices."""
    cfg = bundle.cfg
    result = evaluate_detection(folder, read, {"rule": lambda st, lv: rule_candidates(st, lv, cfg)},
                                lambda st: liver_mask(st, bundle)[0], cfg.score_threshold,
                                cfg.inside_liver_fraction)["detectors"]["rule"]
    per = result["per_patient"]
    row = {f"f1_iou{k}": result["pooled_after_liver_filter"][k]["f1"] for k in ("0.1", "0.3", "0.5")}
    row["lesions_found"] = {k: [v["lesion_level_iou0.1"]["found"], v["lesion_level_iou0.1"]["lesions"]]
                            for k, v in per.items()}
    row["false_lesions"] = {k: v["false_lesions_iou0.1"] for k, v in per.items()}
    row["read_as"] = {s.study_id: [round(s.export_window.center), round(s.export_window.width),
                                   s.export_window_source] for s in read}
    return row


READINGS = (("default", WINDOW), ("given", None), ("auto", AUTO))  # None: the export window itself


def main(folder: Path, out: Path) -> None:
    bundle = load_bundle("default")
    studies = labelled_studies(folder)
    rows = {}
    for level, width in WINDOWS:
        for mode, read_as in READINGS:
            if mode == "given" and (level, width) == (40, 400):
                continue
            read = [as_windowed(s, (level, width), read_as or (level, width)) for s in studies]
            rows[f"W{width} L{level} read as {mode}"] = row = detection_row(folder, read, bundle)
            print(f"W{width} L{level} read as {mode}:", json.dumps(row), flush=True)
    out.write_text(json.dumps(rows, indent=1))


def slab_detection(folder: Path, out: Path, n: int = 60, exports=((40, 350), (50, 500))) -> None:
    """The shipped detector on ``n``-slice runs (start, middle and end of the liver's slice range) of each
    patient with liver lesions, exported 8-bit and read as default / given / auto."""
    bundle = load_bundle("default")
    rows = {}
    for study in labelled_studies(folder):
        if not study.lesion.any():
            continue
        z = np.nonzero(study.liver.any(axis=(1, 2)))[0]
        for z0 in sorted({int(z.min()), int((z.min() + z.max() - n) // 2), int(max(z.min(), z.max() - n))}):
            part = replace(study, grey=study.grey[z0:z0 + n], hu=study.hu[z0:z0 + n], liver=study.liver[z0:z0 + n],
                           lesion=study.lesion[z0:z0 + n])
            for level, width in exports:
                for mode, read_as in READINGS:
                    read = [as_windowed(part, (level, width), read_as or (level, width))]
                    key = f"{study.study_id} slices {z0}-{z0 + n - 1} W{width} L{level} read as {mode}"
                    rows[key] = row = detection_row(folder, read, bundle)
                    print(key, json.dumps(row), flush=True)
    out.write_text(json.dumps(rows, indent=1))


def slab_errors(folder: Path, out: Path, lengths=(10, 20, 40, 60), draws: int = 6, seed: int = 0) -> None:
    """Width error (%) of :func:`estimate_window` on ``draws`` random runs of each length inside the liver's
    slice range (and on the whole volume), for every export window above."""
    rng = np.random.default_rng(seed)
    rows = {}
    for study in labelled_studies(folder):
        z = np.nonzero(study.liver.any(axis=(1, 2)))[0]
        for n in (*lengths, study.n_slices):
            starts = [0] if n == study.n_slices else rng.integers(z.min(), max(z.min() + 1, z.max() - n + 1), draws)
            errors, failed = [], 0
            for z0 in starts:
                for level, width in WINDOWS:
                    est = estimate_window(np.round(apply_window(study.hu[z0:z0 + n], (level, width))))
                    if est.window is None:
                        failed += 1
                    else:
                        errors.append(100 * (est.window.width / width - 1))
            key = f"{study.study_id} {'whole' if n == study.n_slices else n}"
            rows[key] = {"estimates": len(errors), "no_estimate": failed,
                         "width_error_pct_min_median_max": [round(float(v), 1) for v in np.percentile(errors, [0, 50, 100])]
                         if errors else None}
            print(key, json.dumps(rows[key]), flush=True)
    out.write_text(json.dumps(rows, indent=1))


def file_exports(folder: Path, out: Path, exports=(("png", None, (40, 400)), ("jpg", 90, (40, 400)),
                                                     ("jpg", 75, (40, 400)), ("jpg", 75, (40, 350)))) -> None:
    """The real ``predict`` reading path: each study written as 8-bit PNG/JPEG slice files (JPEG quality
    given) to a temporary folder, read back by ``read_input_study`` with the default window handling."""
    import tempfile

    from PIL import Image

    from lesiondx.ct_liver.study import read_input_study

    bundle = load_bundle("default")
    studies = labelled_studies(folder)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, quality, window in exports:
            read = []
            for study in studies:
                where = Path(tmp) / f"{study.study_id}_{fmt}{quality}_{window[1]}"
                where.mkdir()
                for k, plane in enumerate(np.round(apply_window(study.hu, window)).astype(np.uint8)):
                    Image.fromarray(plane).save(where / f"slice_{k:03d}.{fmt}", **({"quality": quality} if quality else {}))
                back = read_input_study(where)
                read.append(replace(back, study_id=study.study_id, patient_id=study.patient_id, liver=study.liver,
                                    lesion=study.lesion))
            key = f"{fmt}{'' if quality is None else f' q{quality}'} W{window[1]} L{window[0]}"
            rows[key] = row = detection_row(folder, read, bundle)
            print(key, json.dumps(row), flush=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    if "--files" in sys.argv:
        file_exports(Path(sys.argv[1]), Path(sys.argv[2]))
    elif "--slabs" in sys.argv:
        slab_errors(Path(sys.argv[1]), Path(sys.argv[2]))
        slab_detection(Path(sys.argv[1]), Path(sys.argv[2]).with_name("slab_detection.json"))
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
