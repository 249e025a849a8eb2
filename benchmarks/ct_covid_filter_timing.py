"""ct-covid: the rule stage with the candidate filter vs the previous rule, same process and series (ONNX Runtime).

Usage: OMP_NUM_THREADS=2 python benchmarks/ct_covid_filter_timing.py [CT-MD FOLDER]
"""
import os, sys, time
from dataclasses import replace
from pathlib import Path
import pandas as pd
from lesiondx.ct_covid.model import load_model
from lesiondx.ct_covid.evaluation import read_patient_slices
from lesiondx.ct_covid.pipeline import analyse_series
D = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data" / "covid_ct_md_sample"
lab = pd.read_csv(D / "labels.csv"); lab["image"] = [str(D / p) for p in lab["image"]]
m = load_model("default")
old = replace(m, candidate_filter=None, config=replace(m.config, prob_threshold=0.5, min_lesion_diameter_mm=10.0, k_consecutive=3, candidate_filter=""))
for pid in ("normal001", "P002"):
    rows = lab[lab.patient_id == pid].sort_values("slice_index")
    px, is_hu, sp = read_patient_slices(rows)
    for name, model in (("filter", m), ("previous rule", old), ("filter", m), ("previous rule", old)):
        t = time.perf_counter(); r = analyse_series(px, model, is_hu=is_hu, spacing=sp); tot = time.perf_counter() - t
        print(pid, len(rows), name, {k: round(v, 2) for k, v in r.timings.items()}, "total", round(tot, 2), "decision", r.patient.decision, "load", os.getloadavg()[0], flush=True)
