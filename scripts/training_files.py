"""Write ``training_files.csv`` for the shipped models (``models/<task>/``): the sha256 and role of every image file
each was trained or tuned on, from the shared data folders their model cards name, so that ``lesiondx evaluate``
says when a folder overlaps them. Run again whenever a shipped model is retrained.

Usage: PYTHONPATH=src python scripts/training_files.py [SHARED_DATA]   (default ../shared/data)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from lesiondx.ct_covid.lopo import list_filter_data
from lesiondx.data import TRAINING_FILES, image_roles, load_manifest, write_training_files
from lesiondx.us_liver.task import data_hash

REPO = Path(__file__).resolve().parents[1]

def main(shared: Path) -> None:
    us = load_manifest(shared / "aul_liver_us")
    shipped_hash = (REPO / "models" / "us-liver" / "data_hash.txt").read_text().strip()
    if data_hash(us.root, us.frame) != shipped_hash:
        raise SystemExit(f"{shared / 'aul_liver_us'}: not the folder the shipped us-liver model was trained on "
                         "(data_hash.txt differs); refusing to write its list")
    models = REPO / "models"
    # what each model card says the shipped model was trained or tuned on, with the roles `lesiondx train` and
    # `python -m lesiondx.ct_covid.lopo --ship` record for a run
    write_training_files(models / "us-liver", image_roles(
        us.frame, "training folder aul_liver_us (segmenter, classifier heads, threshold)"), root=us.root)
    crops = us.frame[us.frame["label"].isin(["benign", "malignant"]) & us.frame["lesion_mask"].notna()]
    write_training_files(models / "ct-liver", image_roles(crops, "classifier (lilnet) training: AUL lesion crops"),
                         root=us.root)
    medseg = load_manifest(shared / "covid_medseg_semiseg")
    segmenter = medseg.frame[medseg.frame["split"].astype(str) == "train"]  # its 40 train + 10 validation slices
    write_training_files(models / "ct-covid", image_roles(segmenter, "segmenter training"), root=medseg.root)
    list_filter_data(models / "ct-covid", [shared / "covid_ct_md_sample", shared / "chest_ct_lung_cancer"],
                     medseg.root)
    for model in ("us-liver", "ct-liver", "ct-covid"):
        listed = pd.read_csv(models / model / TRAINING_FILES)
        print(f"models/{model}/{TRAINING_FILES}: {listed['sha256'].nunique()} files; "
              + "; ".join(f"{role}: {n}" for role, n in listed["role"].value_counts().items()))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data")
