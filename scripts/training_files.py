"""Write ``training_files.csv`` for the shipped models (``models/<task>/``): the sha256 and role of every image file
each was trained or tuned on, from the shared data folders their model cards name, so that ``lesiondx evaluate``
says when a folder overlaps them. Run again whenever a shipped model is retrained.

Usage: PYTHONPATH=src python scripts/training_files.py [SHARED_DATA]   (default ../shared/data)
"""

from __future__ import annotations

import sys
from pathlib import Path

from lesiondx.data import load_manifest, write_training_files
from lesiondx.us_liver.task import data_hash

REPO = Path(__file__).resolve().parents[1]

# (model dir, data folder, rows, role): what each model card says the shipped model was trained or tuned on
SHIPPED = (
    ("us-liver", "aul_liver_us", "all", "training folder aul_liver_us (segmenter, classifier heads, threshold)"),
    ("ct-liver", "aul_liver_us", "benign/malignant with lesion_mask", "classifier (lilnet) training: AUL lesion crops"),
    ("ct-covid", "covid_medseg_semiseg", "split train", "segmenter training; candidate filter"),
    ("ct-covid", "covid_medseg_semiseg", "split test", "rule settings (MedSeg test lesion recall)"),
    ("ct-covid", "covid_ct_md_sample", "all", "candidate filter; rule settings"),
    ("ct-covid", "chest_ct_lung_cancer", "all", "candidate filter; rule settings"),
)


def _rows(frame, which: str):
    if which == "all":
        return frame
    if which.startswith("split "):
        return frame[frame["split"].astype(str) == which.split()[1]]
    return frame[frame["label"].isin(["benign", "malignant"]) & frame["lesion_mask"].notna()]


def main(shared: Path) -> None:
    us = load_manifest(shared / "aul_liver_us")
    shipped_hash = (REPO / "models" / "us-liver" / "data_hash.txt").read_text().strip()
    if data_hash(us.root, us.frame) != shipped_hash:
        raise SystemExit(f"{shared / 'aul_liver_us'}: not the folder the shipped us-liver model was trained on "
                         "(data_hash.txt differs); refusing to write its list")
    written: set[str] = set()
    for model, folder, which, role in SHIPPED:
        manifest = load_manifest(shared / folder)
        rows = _rows(manifest.frame, which)
        target = write_training_files(REPO / "models" / model, [(p, role) for p in rows["image"]],
                                      root=manifest.root, append=model in written)
        written.add(model)
        print(f"{target.relative_to(REPO)}: {len(rows)} files of {folder} ({which}): {role}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "data")
