"""Refit the raster modality probe (``models/gate/modality_probe.npz``) on the shared data and check it.

``python -m lesiondx.gate.fit_modality SHARED_DATA OUT.npz [--hold-out-widths]``: ultrasound = AUL frames
(with ``--hold-out-widths``, the second most common frame width and every third rarer width are held out as
unseen scanner groups); CT = 16 slices × lung / mediastinum / abdomen windows of the four shared chest-CT
series + the MedSeg train slices. Checks: held-out widths, 300-px-wide copies, MedSeg test slices, IRCADb
renders (read in place, never used for fitting). The checks' numbers go into the file's ``meta``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lesiondx.io import apply_window, read_raster_array, read_study, resize

from .modality import fit_modality_probe, image_features, save_probe

CHEST = ("covid_ct_md_sample/series/P002", "covid_ct_md_sample/series/normal001",
         "chest_ct_lung_cancer/series/A0001", "chest_ct_lung_cancer/series/A0002")


def ct_renders(path: Path, n: int = 16) -> list[np.ndarray]:
    """``n`` evenly spaced slices of a HU series in lung, mediastinum and abdomen windows (8-bit grey)."""
    hu = read_study(path).pixels
    idx = np.linspace(0, len(hu) - 1, n).astype(int)
    return [apply_window(hu[i], w) for i in idx for w in ("lung", "mediastinum", "abdomen")]


def features(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([image_features(images[i : i + 16]) for i in range(0, len(images), 16)])


def narrow(grey: np.ndarray, width: int = 300) -> np.ndarray:
    """A teaching-frame-like copy ``width`` px wide."""
    h, w = grey.shape
    return resize(grey, (int(round(h * width / w)), width))


def main(shared: Path, out: Path, hold_out_widths: bool) -> dict:
    ct = [g for rel in CHEST for g in ct_renders(shared / rel)]
    ct += [read_raster_array(p) for p in sorted((shared / "covid_medseg_semiseg/train/images").glob("*.jpg"))]
    labels = pd.read_csv(shared / "aul_liver_us/labels.csv")
    us = [read_raster_array(shared / "aul_liver_us" / p) for p in labels["image"]]
    widths = np.array([g.shape[1] for g in us])
    held_w: set[int] = set()
    if hold_out_widths:
        values, counts = np.unique(widths, return_counts=True)
        order = np.argsort(counts)[::-1]
        held_w = {int(values[order[1]])} | {int(v) for v in values[order[4::3]]}
    held = np.isin(widths, list(held_w))
    us_fit = [g for g, h in zip(us, held) if not h]
    us_test = [g for g, h in zip(us, held) if h]
    f_us, f_ct = features(us_fit), features(ct)
    probe = fit_modality_probe(f_us, f_ct)
    ircadb = [g for p in sorted(shared.glob("liver_ircadb01_*/ct/*")) if p.is_dir() for g in ct_renders(p)]
    checks = {"fit_us": (f_us, 1), "fit_ct": (f_ct, 0),
              "aul_300px_copies": (features([narrow(g) for g in (us_test or us_fit[::4])]), 1),
              "medseg_test": (features([read_raster_array(p) for p in sorted((shared / "covid_medseg_semiseg/test/images").glob("*.jpg"))]), 0)}
    if us_test:
        checks["aul_held_out_widths"] = (features(us_test), 1)
    if ircadb:
        checks["ircadb_renders_never_fitted"] = (features(ircadb), 0)
    results = {}
    for name, (f, truth) in checks.items():
        p = probe.p_ultrasound(f)
        results[name] = {"n": int(len(p)), "truth": "US" if truth else "CT", "p_us_min": float(p.min()),
                         "p_us_median": float(np.median(p)), "p_us_max": float(p.max())}
    meta = {"fitted_on": {"us": f"{len(us_fit)} AUL frames (held-out widths {sorted(held_w)})",
                          "ct": f"{len(ct)} CT images (4 chest series x 16 slices x 3 windows + MedSeg train)"},
            "checks": results}
    save_probe(probe, out, meta)
    return meta


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), Path(sys.argv[2]), "--hold-out-widths" in sys.argv), indent=2))
