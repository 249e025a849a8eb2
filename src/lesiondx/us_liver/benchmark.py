"""Cross-validated benchmark of DCNN-US variants on one dataset folder (out-of-fold predictions).

    python -m lesiondx.us_liver.benchmark --data /work/shared/data/aul_liver_us --out runs/us_liver/bench

Writes ``oof.csv`` (one column per variant), ``benchmark.json`` (AUCs with DeLong 95% CIs, paired
DeLong tests, the 1024-wide subgroup, the size-and-scanner baseline) and per-fold curves.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from lesiondx.data import grouped_kfold, load_manifest
from lesiondx.progress import track
from lesiondx.stats import auc_delong, delong_paired_test

from . import domains
from .cache import cache_name, cached_features
from .config import UsLiverConfig, load_us_config
from .lbc import candidate_factors, fit_lbc, lbc_cross_validated, save_nomogram
from .model import base_backbone
from .train import cross_validate, size_scanner_baseline

if TYPE_CHECKING:
    from .probe import ProbeCache

VARIANTS = {
    "plain_bce_L": {"branches": "L", "triplet_weight": 0.0},
    "model_L_triplet": {"branches": "L"},
    "model_LB_triplet": {"branches": "LB"},
}


def classifier_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Benign and malignant rows that have a lesion mask (normal frames are not classified)."""
    keep = frame["label"].astype(str).isin(["benign", "malignant"]) & frame["lesion_mask"].notna()
    return frame[keep].reset_index(drop=True)


def auc_entry(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    r = auc_delong(y, s)
    return {"auc": r.auc, "ci": [r.ci_low, r.ci_high], "n_pos": int(y.sum()), "n_neg": int((1 - y).sum())}


def summarise(table: pd.DataFrame, scores: dict[str, np.ndarray]) -> dict:
    """AUC + CI per variant (all, 1024-wide subgroup), and paired DeLong tests between variants."""
    y = table["y"].to_numpy()
    wide = table["width"].to_numpy() == 1024
    out: dict = {"n": int(len(y)), "n_1024_wide": int(wide.sum()), "auc": {}, "auc_1024_wide": {}, "paired_delong": {}}
    for name, s in scores.items():
        out["auc"][name] = auc_entry(y, s)
        if 2 <= y[wide].sum() < wide.sum() - 1:
            out["auc_1024_wide"][name] = auc_entry(y[wide], s[wide])
    names = list(scores)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            t = delong_paired_test(y, scores[a], scores[b])
            out["paired_delong"][f"{a} vs {b}"] = {"auc_diff": t.diff, "diff_ci": [t.diff_ci_low, t.diff_ci_high], "p": t.p}
    return out


def fold0_check(model: str, data: Path, out: Path) -> dict:
    """ROI proposal vs ground-truth ROIs on fold 0, which neither the segmenter nor fold model 0
    saw (train() keeps fold 0 out of the segmenter; member 0 tests fold 0)."""
    from .inference import load_bundle
    from .task import _score_rows

    bundle = load_bundle(model, engine="torch")  # one fold head of the torch ensemble (the export averages all)
    bundle.ensemble.members = bundle.ensemble.members[:1]
    cfg = bundle.config
    frame = load_manifest(data).frame
    frame = frame[grouped_kfold(frame, cfg.folds, seed=cfg.seed) == 0]
    preds = _score_rows(bundle, frame)
    preds.to_csv(out / "fold0_predictions.csv", index=False)
    bm = preds[preds["label"].isin(["benign", "malignant"])].reset_index(drop=True)
    y = bm["label"].eq("malignant").astype(int).to_numpy()
    result = {"n": int(len(bm)), "proposed_roi": auc_entry(y, bm["score"].fillna(0).to_numpy()),
              "ground_truth_roi": auc_entry(y, bm["score_gt_roi"].to_numpy()),
              "proposal_box_iou_median": float(bm["proposal_box_iou"].median()),
              "proposal_box_iou_ge_0.5": float((bm["proposal_box_iou"] >= 0.5).mean()),
              "no_lesion_found": int(bm["score"].isna().sum())}
    return result


def _probe_cache(cfg: UsLiverConfig, data: Path, out: Path) -> tuple[pd.DataFrame, ProbeCache]:
    """The folder's manifest and the probe features of its benign/malignant rows (ground-truth ROIs),
    cached in ``cfg.cache_dir`` (else ``out``) under a name keyed by the data hash and the settings."""
    from .probe import cached_probe_features, pooled_trunk, probe_cache_name
    from .task import data_hash

    frame = load_manifest(data).frame
    rows = classifier_rows(frame)
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else out
    path = cache_dir / probe_cache_name(cfg, data_hash(data, frame))
    return frame, cached_probe_features(rows, cfg, pooled_trunk(cfg.levels, cfg.backbone), path)


def scanner_loso(cfg: UsLiverConfig, data: Path, out: Path, min_frames: int = domains.MIN_FRAMES) -> dict:
    """Leave-one-scanner-out (``domains``) of the probe recipe of ``cfg`` beside its pooled grouped CV:
    per left-out group with ``min_frames`` benign/malignant frames, Model_LBM AUC and the size-and-scanner
    baseline trained on the same rows, paired DeLong. Writes ``loso.csv``, ``loso_groups.csv``, ``loso.json``."""
    from .probe import cross_validate_probe

    frame, cache = _probe_cache(cfg, data, out)
    table = cache.table
    groups = domains.scanner_groups(frame).set_axis(frame["image_id"])
    group_counts = domains.group_table(groups, frame["label"].set_axis(groups.index))
    group_counts.to_csv(out / "loso_groups.csv")
    group = table["image_id"].map(groups).to_numpy()
    fold_name = domains.loso_folds(pd.Series(group), table["label"], min_frames).to_numpy()
    model, chosen = domains.leave_one_scanner_out(cache, fold_name, cfg)
    baseline = domains.size_scanner_loso(table, fold_name)
    fold_of = dict(zip(frame["image_id"], grouped_kfold(frame, cfg.folds, seed=cfg.seed)))
    pooled, _ = cross_validate_probe(cache, table["image_id"].map(fold_of).to_numpy(), cfg)
    y = table["y"].to_numpy()
    area = np.log1p(table["lesion_area"].to_numpy(float))
    rows = table[["image_id", "label", "y", "width", "height", "lesion_area"]].assign(
        scanner_group=group, loso_fold=fold_name, loso_model=model, loso_baseline=baseline, pooled_cv_model=pooled)
    rows.to_csv(out / "loso.csv", index=False)
    results = []
    for name in sorted(set(fold_name) - {domains.OTHER}, key=lambda n: -(fold_name == n).sum()):
        idx = fold_name == name
        if domains.evaluable(y[idx]):
            r = domains.group_result(name, y[idx], model[idx], baseline[idx], area[idx])
            results.append(r.__dict__ | {"holds": r.holds, "pooled_cv_auc_in_group": auc_entry(y[idx], pooled[idx])})
    other = fold_name == domains.OTHER
    summary = {
        "groups": group_counts.reset_index().to_dict("records"), "min_frames": min_frames, "per_group": results,
        "other_small_groups": auc_entry(y[other], model[other]) if domains.evaluable(y[other]) else None,
        "loso_all": auc_entry(y, model), "loso_baseline_all": auc_entry(y, baseline),
        "pooled_cv": auc_entry(y, pooled), "chosen_c": chosen,
        "all_groups_hold": bool(results) and all(r["holds"] for r in results)}
    (out / "loso.json").write_text(json.dumps(summary, indent=2, default=float))
    return summary


def print_loso(summary: dict) -> None:
    """One line per left-out group and the pooled figures."""
    for r in summary["per_group"]:
        print(f"{r['group']:>20} b {r['n_benign']:3d} m {r['n_malignant']:3d}  AUC {r['auc']:.3f} "
              f"({r['auc_ci'][0]:.3f}-{r['auc_ci'][1]:.3f})  baseline {r['baseline_auc']:.3f}  "
              f"diff {r['diff']:+.3f} p {r['p']:.3g}  area-in-group {r['area_auc_in_group']:.3f}  "
              f"pooled-CV {r['pooled_cv_auc_in_group']['auc']:.3f}  holds {r['holds']}")
    for key in ("other_small_groups", "loso_all", "loso_baseline_all", "pooled_cv"):
        if summary[key]:
            e = summary[key]
            print(f"{key:>20} n {e['n_neg']}+{e['n_pos']}  AUC {e['auc']:.3f} ({e['ci'][0]:.3f}-{e['ci'][1]:.3f})")


def segmenter_peaks(model: str, data: Path) -> pd.DataFrame:
    """Per frame of ``data``: label, grouped fold (the bundle's seed), the segmenter's peak lesion probability."""
    from .inference import load_bundle
    from .rois import read_frame
    from .segment import propose

    bundle = load_bundle(model)
    frame = load_manifest(data).frame
    folds = grouped_kfold(frame, bundle.config.folds, seed=bundle.config.seed)
    # bundles on ONNX Runtime propose themselves; torch bundles through segment.propose
    proposer = getattr(bundle, "propose", None) or (lambda grey: propose(bundle.segmenter, grey, bundle.config.seg_size))
    peaks = [proposer(read_frame(image).grey).lesion_probability for image in track(list(frame["image"]), "segmenter peaks")]
    return pd.DataFrame({"image_id": frame["image_id"], "label": frame["label"], "fold": folds, "peak": peaks})


def choose_no_lesion_threshold(table: pd.DataFrame, held_out_fold: int = 0) -> dict:
    """Lesion presence (benign/malignant frames) vs normal frames from the peak lesion probability: the
    threshold is Youden's on every fold but ``held_out_fold`` (the segmenter's training frames), and its
    sensitivity / specificity (Wilson 95 % CIs) are measured on ``held_out_fold`` (unseen by both)."""
    from lesiondx.stats import youden_threshold
    from lesiondx.stats.binary import wilson_ci

    table = table[table["label"].isin(["benign", "malignant", "normal"])]
    y = table["label"].ne("normal").to_numpy()
    train = table["fold"].to_numpy() != held_out_fold
    cut = youden_threshold(y[train], table["peak"].to_numpy()[train])
    test = ~train
    found = table["peak"].to_numpy()[test] >= cut.threshold
    tp, n_pos = int((found & y[test]).sum()), int(y[test].sum())
    tn, n_neg = int((~found & ~y[test]).sum()), int((~y[test]).sum())
    sens, spec = wilson_ci(tp, n_pos), wilson_ci(tn, n_neg)
    return {"threshold": cut.threshold, "chosen_on": f"{int(train.sum())} frames outside fold {held_out_fold}",
            "train_sensitivity": cut.sensitivity, "train_specificity": cut.specificity,
            "held_out": {"fold": held_out_fold, "n_lesion": n_pos, "n_normal": n_neg,
                         "sensitivity": [tp / max(1, n_pos), sens.ci_low, sens.ci_high],
                         "specificity": [tn / max(1, n_neg), spec.ci_low, spec.ci_high],
                         "auc": auc_entry(y[test].astype(int), table["peak"].to_numpy()[test])}}


def repeated_partitions(cfg: UsLiverConfig, data: Path, out: Path, n: int) -> pd.DataFrame:
    """Model_LBM (``head: probe``) against the size-and-scanner baseline on ``n`` different grouped 5-fold
    partitions (fold seeds 0..n-1; the recipe and the features stay fixed): how much the out-of-fold AUC
    and the paired DeLong difference depend on the one partition the recipe was chosen on."""
    from .probe import cross_validate_probe

    frame, cache = _probe_cache(cfg, data, out)
    y = cache.table["y"].to_numpy()
    records = []
    for seed in range(n):
        fold_of = dict(zip(frame["image_id"], grouped_kfold(frame, cfg.folds, seed=seed)))
        folds = cache.table["image_id"].map(fold_of).to_numpy()
        model, _ = cross_validate_probe(cache, folds, cfg)
        baseline = size_scanner_baseline(cache.table, folds)
        a, b, t = auc_delong(y, model), auc_delong(y, baseline), delong_paired_test(y, model, baseline)
        records.append({"fold_seed": seed, "model_auc": a.auc, "model_ci_low": a.ci_low, "model_ci_high": a.ci_high,
                        "baseline_auc": b.auc, "diff": t.diff, "diff_ci_low": t.diff_ci_low,
                        "diff_ci_high": t.diff_ci_high, "p": t.p})
        print(records[-1], flush=True)
    table = pd.DataFrame(records)
    table.to_csv(out / "repeated_partitions.csv", index=False)
    return table


def timing(model: str, images: list[Path], out: Path) -> dict:
    """Seconds per image for predict (ROI proposal included), with and without Grad-CAM."""
    import time

    from .task import predict

    predict(images[:1], model, out / "warmup")
    result = {}
    for cam in (False, True):
        t = time.perf_counter()
        predict(images, model, out / "timing", cam=cam)
        result["with_cam" if cam else "without_cam"] = (time.perf_counter() - t) / len(images)
    return result | {"n_images": len(images), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--fold0-check", metavar="MODEL", help="also: proposed vs ground-truth ROIs on fold 0")
    parser.add_argument("--timing", metavar="MODEL", help="only: predict seconds per image on 20 images")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat-partitions", type=int, default=0, metavar="N",
                        help="only: the probe recipe of --config vs the baseline on N grouped 5-fold partitions")
    parser.add_argument("--leave-one-scanner-out", action="store_true",
                        help="only: the probe recipe of --config left out one scanner group (image geometry) at a time")
    parser.add_argument("--no-lesion-threshold", metavar="MODEL",
                        help="only: lesion-presence threshold on the segmenter's peak (chosen outside fold 0, measured on it)")
    parser.add_argument("--lbc-on", default="", help="score column fused by Model_LBC (default: last variant)")
    parser.add_argument("--extra", action="append", default=[], metavar="OOF_CSV:COLUMN:NAME",
                        help="add another run's out-of-fold column (same rows) to the comparison")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.timing:
        images = sorted(load_manifest(args.data).frame["image"].map(Path))[:: 25][:20]
        result = timing(args.timing, images, args.out)
        (args.out / "timing.json").write_text(json.dumps(result, indent=2))
        print(result)
        return
    if args.repeat_partitions:
        table = repeated_partitions(load_us_config(args.config), args.data, args.out, args.repeat_partitions)
        print(table.describe().loc[["mean", "std", "min", "max"]].round(3).to_string())
        return
    if args.no_lesion_threshold:
        peaks = segmenter_peaks(args.no_lesion_threshold, args.data)
        peaks.to_csv(args.out / "no_lesion_peaks.csv", index=False)
        result = choose_no_lesion_threshold(peaks)
        (args.out / "no_lesion.json").write_text(json.dumps(result, indent=2, default=float))
        print(json.dumps(result, indent=1, default=float))
        return
    if args.leave_one_scanner_out:
        print_loso(scanner_loso(load_us_config(args.config), args.data, args.out))
        return
    if args.fold0_check:
        result = fold0_check(args.fold0_check, args.data, args.out)
        (args.out / "fold0_check.json").write_text(json.dumps(result, indent=2, default=float))
        print(result)
        return
    cfg = load_us_config(args.config)
    frame = load_manifest(args.data).frame
    folds_all = grouped_kfold(frame, cfg.folds, seed=cfg.seed)
    rows = classifier_rows(frame.assign(fold=folds_all))
    from .task import data_hash

    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else args.out
    trunk, _, _, _ = base_backbone(cfg.backbone, cfg.trainable_tail)
    cache = cached_features(rows, cfg, trunk, cache_dir / cache_name(cfg, data_hash(args.data, frame)))
    folds = cache.table["fold"].to_numpy()
    _, tail, features, _ = base_backbone(cfg.backbone, cfg.trainable_tail)
    scores: dict[str, np.ndarray] = {"size_scanner_baseline": size_scanner_baseline(cache.table, folds)}
    oof = cache.table[["image_id", "patient_id", "label", "y", "fold", "width", "height", "lesion_area",
                       "lesion_size_rel", "lesion_depth_rel"]].copy()
    oof["size_scanner_baseline"] = scores["size_scanner_baseline"]
    epochs = {}
    for name in filter(None, args.variants.split(",")):
        vcfg = replace(cfg, **VARIANTS[name]) if name in VARIANTS else cfg
        cv = cross_validate(cache, tail, features, vcfg, folds)
        scores[name] = oof[name] = cv.oof
        epochs[name] = [r.best_epoch for r in cv.results]
        pd.concat([r.curve.assign(fold=i) for i, r in enumerate(cv.results)]).to_csv(args.out / f"curves_{name}.csv", index=False)
        print(name, summarise(cache.table, {name: cv.oof})["auc"][name], flush=True)
    for spec in args.extra:
        path, column, name = spec.rsplit(":", 2)
        other = pd.read_csv(path)
        if list(other["image_id"]) != list(oof["image_id"]):
            raise ValueError(f"{path}: rows differ from this run's")
        scores[name] = oof[name] = other[column].to_numpy()
    best = args.lbc_on or (args.variants.split(",")[-1] if args.variants else "")
    if best in scores:  # Model_LBC: fusion of the lesion-level score with mask-derived factors, same folds
        factors = candidate_factors(oof.drop(columns=["size_scanner_baseline", *scores]))
        scores["model_LBC"] = oof["model_LBC"] = lbc_cross_validated(oof, folds, best, factors)
        full = fit_lbc(oof, best, factors)
        full.screen.to_csv(args.out / "lbc_screen.csv", index=False)
        full.model.table().to_csv(args.out / "lbc_model.csv", index=False)
        save_nomogram(full, args.out / "lbc_nomogram.png", "Model_LBC nomogram (AUL, mask-derived factors)")
    summary = summarise(cache.table, scores) | {"best_epochs": epochs, "config": cfg.__dict__}
    oof.to_csv(args.out / "oof.csv", index=False)
    (args.out / "benchmark.json").write_text(json.dumps(summary, indent=2, default=float))
    print(json.dumps(summary["auc"], indent=1, default=float))


if __name__ == "__main__":
    main()
