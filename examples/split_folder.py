"""Split a dataset folder by patient into ``OUT/train`` and ``OUT/test``: two dataset folders whose labels.csv keep
the source's rows and whose files are symlinks to the source (nothing is copied; a licence that forbids copies,
such as IRCADb's, is kept). No patient is on both sides (``lesiondx.data.grouped_split``, stratified by label).

    python examples/split_folder.py ../shared/data/aul_liver_us runs/aul_small --labels benign,malignant \\
        --patients-per-label 22 --test 0.45

``--patients-per-label N`` first draws N patients of each label (a small folder for a quick run; 0 = all).
Prints the counts per side and label. Then ``lesiondx train --data OUT/train`` and
``lesiondx evaluate --data OUT/test`` (README, "A first research loop").
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from lesiondx.data import grouped_split, load_manifest


def pick_patients(frame: pd.DataFrame, per_label: int, seed: int) -> pd.DataFrame:
    """The rows of ``per_label`` patients of each label (drawn with ``seed``; 0 = every row)."""
    if per_label <= 0:
        return frame
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for _, rows in frame.groupby("label", sort=True):
        patients = sorted(rows["patient_id"].astype(str).unique())
        chosen += list(rng.choice(patients, size=min(per_label, len(patients)), replace=False))
    return frame[frame["patient_id"].astype(str).isin(chosen)]


def write_folder(frame: pd.DataFrame, source: Path, out: Path) -> None:
    """``out/labels.csv`` with the rows of ``frame`` (paths relative again) and a symlink per file."""
    out.mkdir(parents=True, exist_ok=False)
    path_columns = [c for c in frame.columns if c == "image" or c.endswith("_mask")]
    table = frame.copy()
    for column in path_columns:
        relative = []
        for value in frame[column]:
            if not isinstance(value, str) or not value:
                relative.append("")
                continue
            rel = os.path.relpath(value, source)
            link = out / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(Path(value).resolve())
            relative.append(rel)
        table[column] = relative
    table.to_csv(out / "labels.csv", index=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="dataset folder (labels.csv + files)")
    parser.add_argument("out", type=Path, help="folder to create, holding train/ and test/")
    parser.add_argument("--test", type=float, default=0.3, help="share of patients in test/ (default 0.3)")
    parser.add_argument("--labels", default="", help="comma-separated labels to keep (default: all)")
    parser.add_argument("--patients-per-label", type=int, default=0, help="draw this many patients per label first "
                                                                           "(default 0 = all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw and of the split (default 0)")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.source)
    frame = manifest.frame
    if args.labels:
        keep = [label.strip() for label in args.labels.split(",")]
        unknown = sorted(set(keep) - set(frame["label"]))
        if unknown:
            print(f"error: {args.source / 'labels.csv'}: no row has label(s) {', '.join(unknown)}", file=sys.stderr)
            return 2
        frame = frame[frame["label"].isin(keep)]
    frame = pick_patients(frame, args.patients_per_label, args.seed)
    side = grouped_split(frame, val=0.0, test=args.test, seed=args.seed)
    root = Path(manifest.root)
    for name in ("train", "test"):
        part = frame[side == name]
        write_folder(part, root, args.out / name)
        counts = ", ".join(f"{label} {n}" for label, n in part["label"].value_counts().sort_index().items())
        print(f"{args.out / name}: {len(part)} rows, {part['patient_id'].nunique()} patients ({counts})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
