"""Proof of the LiLNet recipe on real labelled lesions (AUL ultrasound, benign vs malignant):
fixed-scale lesion crops, grouped k-fold out-of-fold predictions, DeLong AUCs and paired tests.

Run one arm per process (CPU-cheap, resumable)::

    python -m lesiondx.ct_liver.recipe /work/shared/data/aul_liver_us runs/ct_liver/ablation --variant lilnet
    python -m lesiondx.ct_liver.recipe /work/shared/data/aul_liver_us runs/ct_liver/ablation --variant plain
    python -m lesiondx.ct_liver.recipe /work/shared/data/aul_liver_us runs/ct_liver/ablation --summary
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lesiondx.data import Manifest, as_manifest, grouped_kfold, lesion_roi, mask_box
from lesiondx.io import read_raster_array
from lesiondx.progress import track

from .config import CtLiverConfig, load
from .label_tree import LabelTree
from .pipeline import stored_side

if TYPE_CHECKING:
    from .classifier import LiLNet

VARIANTS = {"lilnet": {"lilnet": True}, "plain": {"lilnet": False}}


@dataclass(frozen=True)
class CropSet:
    """Grey lesion crops in [0, 1] ``(n, S, S)`` with one table row each (image_id, patient_id, label,
    width = image width in px, area = lesion area as a fraction of the sector box)."""

    crops: np.ndarray
    table: pd.DataFrame


def aul_rows(manifest: Manifest, labels: tuple[str, ...] = ("benign", "malignant")) -> Manifest:
    """The rows :func:`aul_crops` reads: a lesion mask and a label in ``labels``."""
    frame = manifest.frame
    return manifest.subset(frame["label"].isin(labels) & frame["lesion_mask"].notna())


def usable_aul_row(row: pd.Series) -> None:
    """Read one AUL row's frame and masks as :func:`aul_crops` does; raises ``ImageReadError`` naming the file."""
    for column in ("image", "lesion_mask", "sector_mask"):
        if row.get(column) is not None:
            read_raster_array(row[column], grey=True)


def aul_crops(folder: str | Path | Manifest, cfg: CtLiverConfig, labels: tuple[str, ...] = ("benign", "malignant")) -> CropSet:
    """Fixed-scale crops (side = ``crop_fraction`` × scan-sector width, growing only for larger lesions)
    of every row with a lesion mask and a label in ``labels``; grey, so scanner tint is not a feature.
    ``folder``: a dataset folder or its manifest (e.g. the rows left after excluding unreadable ones)."""
    manifest = as_manifest(folder)
    frame = aul_rows(manifest, labels).frame
    if frame.empty:
        raise ValueError(f"{manifest.root}: no rows with a lesion mask and label in {labels}")
    crops, rows = [], []
    for rec in track(list(frame.itertuples(index=False)), "AUL lesion crops"):
        grey = read_raster_array(rec.image, grey=True) / 255.0
        lesion = read_raster_array(rec.lesion_mask, grey=True) > 127
        if lesion.shape != grey.shape or not lesion.any():
            continue
        sector = None
        if getattr(rec, "sector_mask", None):
            sector = mask_box(read_raster_array(rec.sector_mask, grey=True) > 127)
        ref = sector.width if sector is not None else grey.shape[1]
        crops.append(lesion_roi(grey, lesion, margin=0.15, size=stored_side(cfg), side=cfg.crop_fraction * ref))
        rows.append({"image_id": rec.image_id, "patient_id": rec.patient_id, "label": rec.label,
                     "width": grey.shape[1], "area": float(lesion.sum()) / max(1, ref * ref)})
    return CropSet(np.clip(np.stack(crops), 0, 1).astype(np.float32), pd.DataFrame(rows))


def build_model(cfg: CtLiverConfig, n_classes: int) -> LiLNet:
    """The configured backbone, as LiLNet (``cfg.lilnet``) or as the plain single-head baseline."""
    from .classifier import LiLNet, backbone_stages  # torch: training extras (aul_crops needs none)

    stages = backbone_stages(cfg.backbone)
    return LiLNet(stages, n_classes, joint=cfg.lilnet, aux=cfg.lilnet, freeze_stem=stages.pretrained)


def train_classifier(crops: np.ndarray, labels: list[str], cfg: CtLiverConfig, log=None) -> tuple[LiLNet, str]:
    """Train on crops with label-tree targets; returns the model and the level trained (top/leaf)."""
    from .classifier import fit

    tree = LabelTree.from_mapping(cfg.label_tree)
    level = tree.level_for(labels)
    model = build_model(cfg, len(tree.classes(level)))
    fit(model, crops, tree.allowed(labels, level), epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
        weight_decay=cfg.weight_decay, temperature=cfg.temperature, distill_weight=cfg.distill_weight,
        aux_weight=cfg.aux_weight, out_px=cfg.crop_px, seed=cfg.seed, log=log)
    return model, level


def cross_validate(data: CropSet, cfg: CtLiverConfig, out_csv: Path, log=print,
                   only: list[int] | None = None) -> pd.DataFrame:
    """Out-of-fold malignant probability per crop (grouped, stratified ``cfg.folds``-fold CV; ``only``
    runs a subset of folds, rows of other folds keep NaN); the CSV is rewritten after every fold."""
    from .classifier import predict_proba

    folds = grouped_kfold(data.table, cfg.folds, stratify="label", group="patient_id", seed=cfg.seed)
    table = data.table.assign(fold=folds, score=np.nan)
    tree = LabelTree.from_mapping(cfg.label_tree)
    for fold in only if only is not None else range(cfg.folds):
        tr, te = folds != fold, folds == fold
        start = time.time()
        model, level = train_classifier(data.crops[tr], list(table.loc[tr, "label"]), cfg, log=log)
        probs = tree.top_probabilities(predict_proba(model, data.crops[te], cfg.crop_px), level)
        table.loc[te, "score"] = probs[:, tree.top.index("malignant")]
        table.to_csv(out_csv, index=False)
        log(f"fold {fold}: {int(tr.sum())} train / {int(te.sum())} test crops, {time.time() - start:.0f} s")
    return table


def _baseline_scores(table: pd.DataFrame) -> np.ndarray:
    """Out-of-fold size-and-scanner baseline: logistic regression on image width (one-hot) + log area."""
    from sklearn.linear_model import LogisticRegression

    x = pd.get_dummies(table["width"].astype(str)).astype(float)
    x["log_area"] = np.log(table["area"].clip(lower=1e-6))
    y = (table["label"] == "malignant").to_numpy()
    out = np.zeros(len(table))
    for fold in sorted(table["fold"].unique()):
        te = (table["fold"] == fold).to_numpy()
        out[te] = LogisticRegression(max_iter=1000).fit(x[~te], y[~te]).predict_proba(x[te])[:, 1]
    return out


def summarise(out_dir: Path) -> dict:
    """AUCs with DeLong 95 % CIs per arm (all lesions, 1024-px-wide subgroup), the size-and-scanner
    baseline, and paired DeLong tests; written to ``ablation.json``."""
    from lesiondx.stats import auc_delong, delong_paired_test

    tables = {}
    for v in VARIANTS:
        parts = [pd.read_csv(f) for f in sorted(out_dir.glob(f"oof_{v}*.csv"))]
        if parts:
            t = parts[0].copy()
            for part in parts[1:]:
                t["score"] = t["score"].fillna(part["score"])
            tables[v] = t
    if not tables:
        raise FileNotFoundError(f"{out_dir}: no oof_<variant>.csv yet")
    base = next(iter(tables.values()))
    merged = base[["image_id", "patient_id", "label", "width", "area", "fold"]].copy()
    for v, t in tables.items():
        merged[v] = t.set_index("image_id").loc[merged["image_id"], "score"].to_numpy()
    merged["size_scanner_baseline"] = _baseline_scores(merged)
    merged = merged.dropna()
    y = (merged["label"] == "malignant").to_numpy()
    arms = [*tables, "size_scanner_baseline"]

    def auc(mask: np.ndarray, col: str) -> dict:
        r = auc_delong(y[mask], merged.loc[mask, col].to_numpy())
        return {"auc": r.auc, "ci": [r.ci_low, r.ci_high], "n_pos": r.n_pos, "n_neg": r.n_neg}

    everyone = np.ones(len(merged), dtype=bool)
    wide = (merged["width"] == 1024).to_numpy()
    result = {"n_crops": int(len(merged)), "n_patients": int(merged["patient_id"].nunique()),
              "auc": {a: auc(everyone, a) for a in arms}, "auc_width_1024": {a: auc(wide, a) for a in arms},
              "paired_delong": {}}
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            r = delong_paired_test(y, merged[a].to_numpy(), merged[b].to_numpy())
            result["paired_delong"][f"{a} vs {b}"] = {"diff": r.diff, "ci": [r.diff_ci_low, r.diff_ci_high], "p": r.p}
    (out_dir / "ablation.json").write_text(json.dumps(result, indent=2))
    merged.to_csv(out_dir / "oof_all.csv", index=False)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--variant", choices=sorted(VARIANTS))
    parser.add_argument("--config", type=Path)
    parser.add_argument("--summary", action="store_true")
    parser.add_argument("--folds", type=int, nargs="*", help="run only these fold numbers")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.variant:
        import torch

        cfg = replace(load(args.config), **VARIANTS[args.variant])
        torch.set_num_threads(cfg.threads)
        cache = args.out / f"crops_{cfg.crop_px}_{cfg.crop_fraction}.npz"
        if cache.is_file():
            z = np.load(cache, allow_pickle=False)
            data = CropSet(z["crops"], pd.read_csv(args.out / "crops.csv"))
        else:
            data = aul_crops(args.data, cfg)
            np.savez_compressed(cache, crops=data.crops)
            data.table.to_csv(args.out / "crops.csv", index=False)
        suffix = "" if args.folds is None else "_f" + "".join(map(str, args.folds))
        cross_validate(data, cfg, args.out / f"oof_{args.variant}{suffix}.csv", only=args.folds)
    if args.summary:
        print(json.dumps(summarise(args.out), indent=2))


if __name__ == "__main__":
    main()
