"""``lesiondx train|evaluate|predict --task us-liver``: DCNN-US on B-mode liver ultrasound."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lesiondx.config import config_to_dict
from lesiondx.data import mask_box
from lesiondx.gate import result_fields
from lesiondx.gate.ood import load_stats
from lesiondx.io import ImageReadError
from lesiondx.overlay import save_overlay
from lesiondx.progress import track

from .config import MIN_FOLDS, UsLiverConfig, load_us_config
from .inference import CHECKPOINT, Bundle, frame_for, load_bundle, resolve_model, score_frame
from .inputs import lesion_size_mm, read_us_inputs
from .ood import ood_result
from .outputs import (CANDIDATE_BASIS, NO_LESION, PEAK_OUTSIDE, heatmap_peak, lesion_present, no_lesion_below,
                      no_lesion_result)
from .rois import UsFrame, read_frame

if TYPE_CHECKING:
    import pandas as pd

    from lesiondx.data import Manifest
    import torch

    from lesiondx.models.training import TrainingRun

    from lesiondx.stats.evaluation import EvalSettings

# training needs torch (``lesiondx[train]``): its modules are imported inside the training functions, so
# predict / evaluate / serve run on ONNX Runtime without torch installed; the statistics (scipy.stats, matplotlib)
# and pandas are imported by train / evaluate, so a cold ``predict`` process does not pay for them

POSITIVE = "malignant"
UNTRAINED_SEGMENTER = ("seg_epochs: 0 without seg_from: the ROI segmenter is NOT TRAINED (random weights), so the "
                       "lesion regions predict proposes with this run are meaningless; set seg_epochs to 1 or more, "
                       "or seg_from to a trained us_liver.pt to reuse its segmenter")


def data_hash(folder: Path, frame: pd.DataFrame) -> str:
    """sha256 of labels.csv and every image's bytes, in manifest order (:func:`lesiondx.data.data_hash`)."""
    from lesiondx.data import data_hash as folder_hash

    return folder_hash(folder, frame)


def _subsample(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """At most ``n`` rows, class-balanced, whole patients (for quick runs and tests)."""
    import pandas as pd

    if n <= 0 or n >= len(frame):
        return frame
    rng = np.random.default_rng(seed)
    per = max(2, n // frame["label"].nunique())
    keep = []
    for _, part in frame.groupby("label"):
        patients = rng.permutation(part["patient_id"].unique())
        keep.append(part[part["patient_id"].isin(patients[:per])].head(per))
    return pd.concat(keep).reset_index(drop=True)


def _plot_curves(curves: pd.DataFrame, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "epoch" not in curves:  # probe head: inner-validation AUC against the L2 strength C
        fig, b = plt.subplots(figsize=(5, 3.5))
        for fold, part in curves.groupby("fold"):
            b.plot(part["C"], part["val_auc"], marker="o", label=f"fold {fold}")
        b.set(xscale="log", xlabel="C (inverse L2 strength)", ylabel="inner-validation AUC")
        b.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    for fold, part in curves.groupby("fold"):
        a.plot(part["epoch"], part["train_loss"], label=f"fold {fold}")
        b.plot(part["epoch"], part["val_auc"], label=f"fold {fold}")
    a.set(xlabel="epoch", ylabel="training loss")
    b.set(xlabel="epoch", ylabel="inner-validation AUC")
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _segmenter(frame: pd.DataFrame, folds: np.ndarray, cfg: UsLiverConfig) -> tuple[torch.nn.Module, dict, list]:
    """The ROI segmenter, trained on every frame outside fold 0 (kept unseen for checks); with
    ``cfg.seg_from`` it starts from that checkpoint's segmenter (``seg_epochs: 0`` reuses it as is).
    Returns it with its fold-0 Dice per channel and the training log."""
    from lesiondx.models import load_checkpoint

    from .segment import load_seg_arrays, new_segmenter, segmenter_dice, train_segmenter

    init = None
    if cfg.seg_from:
        states, meta = load_checkpoint(cfg.seg_from)
        init = new_segmenter(pretrained=False)
        init.load_state_dict(states["segmenter"])
        if cfg.seg_epochs == 0:
            return init.eval(), meta.get("segmenter_dice_fold0", meta.get("dice", {})), [{"reused_from": cfg.seg_from}]
    rows = frame if cfg.seg_max_images <= 0 else frame.head(cfg.seg_max_images)
    x, y = load_seg_arrays(rows, cfg.seg_size)
    fold = folds[: len(rows)]
    log: list[dict] = [{"started_from": cfg.seg_from}] if cfg.seg_from else []
    segmenter = train_segmenter(x[fold != 0], y[fold != 0], epochs=cfg.seg_epochs, batch_size=cfg.seg_batch_size,
                                lr=cfg.seg_lr, seed=cfg.seed, log=log, init=init)
    dice = segmenter_dice(segmenter, x[fold == 0], y[fold == 0]) if (fold == 0).any() else {}
    return segmenter, dice, log


def train(data: Path, out: Path, config: Path | None = None, skip_bad: bool = False) -> Path:
    """Segmenter + k fold heads (ensemble); threshold by Youden on the inner-validation scores.
    Writes us_liver.pt, config.yaml, data_hash.txt, cv_predictions.csv, curves.csv/png, summary.json, run.json
    into ``OUT.partial``, renamed to ``out`` at the end (an error or Ctrl-C leaves nothing).
    Every row's files are opened first: a bad one stops it before anything is trained (``BadRowsError``),
    or with ``skip_bad`` its row is left out and listed in ``skipped_rows.csv``."""
    from lesiondx.data import (load_manifest, require_columns, require_known_labels, require_one_row_per_image,
                               require_task_layout)
    from lesiondx.models.training import training_run

    cfg = load_us_config(config)
    manifest = load_manifest(data)
    require_task_layout(manifest, "us-liver")
    require_known_labels(manifest, "us-liver")
    require_columns(manifest, ("lesion_mask", "liver_mask", "sector_mask"), "us-liver train learns the lesion, "
                    "liver and scan-sector outlines from these mask PNGs (evaluate and predict do without them)")
    require_one_row_per_image(manifest)
    with training_run(out, data=data, seed=cfg.seed, warnings=manifest.warnings) as run:
        _train_into(run, Path(data), manifest, cfg, skip_bad)
    return Path(out)


def _train_into(run: TrainingRun, data: Path, manifest: Manifest, cfg: UsLiverConfig, skip_bad: bool) -> None:
    """The body of :func:`train`, writing into ``run.path`` (the staged run directory)."""
    import yaml

    from lesiondx.data import (check_training_rows, grouped_kfold, image_roles, require_patients_per_label,
                               write_training_files)
    from lesiondx.stats import auc_delong, youden_threshold

    from .benchmark import classifier_rows
    from .torch_bundle import export_bundle, save_bundle

    out = run.path
    if cfg.seg_epochs == 0 and not cfg.seg_from:
        run.warn(UNTRAINED_SEGMENTER)
    manifest = check_training_rows(manifest, skip_bad=skip_bad, run_dir=out)
    t0 = time.time()
    frame = _subsample(manifest.frame, cfg.max_images, cfg.seed)
    require_patients_per_label(classifier_rows(frame), cfg.folds, where=str(manifest.root / "labels.csv"),
                               min_folds=MIN_FOLDS)
    digest = run.hash_data(data, frame)
    write_training_files(out, image_roles(frame, f"training folder {Path(data).name}"), root=manifest.root)
    (out / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    folds = grouped_kfold(frame, cfg.folds, seed=cfg.seed)
    # ROI proposal: trained on every frame outside fold 0 (fold 0 stays unseen by it, for checks)
    segmenter, seg_dice, seg_log = _segmenter(frame, folds, cfg)
    rows = classifier_rows(frame.assign(fold=folds))
    fit = _fit_probe(rows, cfg, digest) if cfg.head == "probe" else _fit_dcnn(rows, cfg, digest)
    fit.oof_table.to_csv(out / "cv_predictions.csv", index=False)
    y_all = fit.oof_table["label"].eq(POSITIVE).to_numpy()
    threshold = float(youden_threshold(fit.val_y, fit.val_scores).threshold)
    fit.curves.to_csv(out / "curves.csv", index=False)
    _plot_curves(fit.curves, out / "curves.png")
    auc = auc_delong(y_all, fit.oof_table["score"].to_numpy())
    summary = {
        "oof_auc": auc.auc, "oof_auc_ci": [auc.ci_low, auc.ci_high], "n": int(len(y_all)),
        "threshold": threshold, "head": cfg.head, "fold_selection": fit.selection,
        "segmenter_dice_fold0": seg_dice, "segmenter_log": seg_log, "pretrained_backbone": fit.pretrained,
        "data_hash": digest, "seconds": time.time() - t0,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    meta = {"config": config_to_dict(cfg), "threshold": threshold, "data_hash": digest,
            "date": time.strftime("%Y-%m-%d", time.gmtime()),  # the model's name carries the day it was trained
            "n_background_types": fit.n_background_types, "oof_auc": auc.auc, "oof_auc_ci": [auc.ci_low, auc.ci_high],
            "segmenter_dice_fold0": seg_dice, "positive": POSITIVE}
    save_bundle(out / CHECKPOINT, segmenter, fit.members, meta)
    export_bundle(out / CHECKPOINT)  # segmenter.onnx + classifier.onnx: what predict/evaluate/serve run on


@dataclass(frozen=True)
class _Fit:
    """Fold heads of one classifier recipe with their out-of-fold and inner-validation scores."""

    members: list  # torch modules: fold heads
    oof_table: pd.DataFrame  # image_id, patient_id, label, fold, width, score
    val_y: np.ndarray
    val_scores: np.ndarray
    curves: pd.DataFrame
    selection: list  # best epoch (dcnn) or chosen C (probe) per fold
    n_background_types: int
    pretrained: bool


def _cache_path(cfg: UsLiverConfig, name: str) -> Path | None:
    return Path(cfg.cache_dir) / name if cfg.cache_dir else None


def _fit_probe(rows: pd.DataFrame, cfg: UsLiverConfig, digest: str) -> _Fit:
    """Model_LBM: frozen multi-level features of the L/B/M views, logistic head per fold."""
    import pandas as pd

    from .probe import ProbeHead, cached_probe_features, cross_validate_probe, pooled_trunk, probe_cache_name

    trunk = pooled_trunk(cfg.levels, cfg.backbone)
    cache = cached_probe_features(rows, cfg, trunk, _cache_path(cfg, probe_cache_name(cfg, digest)))
    oof, heads = cross_validate_probe(cache, cache.table["fold"].to_numpy(), cfg)
    y = cache.table["y"].to_numpy()
    curves = pd.DataFrame([{"fold": i, "C": c, "val_auc": auc} for i, h in enumerate(heads) for c, auc in h.c_curve])
    return _Fit([ProbeHead.from_fit(h) for h in heads], _oof_table(cache.table, oof),
                np.concatenate([y[h.val_index] for h in heads]), np.concatenate([h.val_scores for h in heads]),
                curves, [h.c for h in heads], 0, trunk.pretrained)


def _fit_dcnn(rows: pd.DataFrame, cfg: UsLiverConfig, digest: str) -> _Fit:
    """Model_L / Model_LB: trained heads on cached trunk features of the ground-truth lesion ROIs."""
    import pandas as pd

    from .cache import cache_name, cached_features
    from .model import DcnnUs, base_backbone
    from .train import background_types, cross_validate

    trunk, tail, features, pretrained = base_backbone(cfg.backbone, cfg.trainable_tail)
    cache = cached_features(rows, cfg, trunk, _cache_path(cfg, cache_name(cfg, digest)))
    cv = cross_validate(cache, tail, features, cfg, cache.table["fold"].to_numpy())
    y_all = cache.table["y"].to_numpy()
    n_bg = background_types(cache.table, cfg.background_column)[1]
    members = []
    for r in cv.results:
        net = DcnnUs(tail, features, branches=cfg.branches, dropout=cfg.dropout, n_background_types=n_bg)
        net.load_state_dict(r.state)
        members.append(net.eval())
    curves = pd.concat([r.curve.assign(fold=i) for i, r in enumerate(cv.results)])
    return _Fit(members, _oof_table(cache.table, cv.oof), np.concatenate([y_all[r.val_index] for r in cv.results]),
                np.concatenate([r.val_scores for r in cv.results]), curves, [r.best_epoch for r in cv.results],
                n_bg, pretrained)


def _oof_table(table: pd.DataFrame, oof: np.ndarray) -> pd.DataFrame:
    return table[["image_id", "patient_id", "label", "fold", "width"]].assign(score=oof)


def _iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return float("nan")
    box_a, box_b = mask_box(a), mask_box(b)
    return box_a.iou(box_b) if box_a and box_b else 0.0


def _score_rows(bundle: Bundle, frame: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    """Per image: score with the proposed ROI (as in practice) and with the ground-truth ROI."""
    records = []
    for row in track(list(frame.itertuples(index=False)), "scoring images"):
        truth = read_frame(_row_grey(row.image), *(getattr(row, c, None) for c in ("lesion_mask", "liver_mask", "sector_mask")))
        prop = bundle.propose(truth.grey)
        rec = {"image_id": row.image_id, "patient_id": row.patient_id, "label": row.label,
               "width": truth.grey.shape[1], "height": truth.grey.shape[0], "score": np.nan,
               "score_gt_roi": np.nan, "proposal_box_iou": _iou(prop.lesion if prop.box else None, truth.lesion)}
        if prop.box is not None:
            used = UsFrame(truth.grey, prop.lesion, prop.liver if prop.liver.any() else None,
                           prop.sector if prop.sector.any() else None)
            rec["score"] = score_frame(bundle, used).probability
            rec["box"] = json.dumps(prop.box.as_list())
        if truth.lesion is not None:
            rec["score_gt_roi"] = score_frame(bundle, truth).probability
        records.append(rec)
    return pd.DataFrame(records)


def _auc(frame: pd.DataFrame, col: str) -> dict | None:
    from lesiondx.stats import auc_delong

    part = frame.dropna(subset=[col])
    y = part["label"].eq(POSITIVE).to_numpy()
    if y.sum() < 2 or (~y).sum() < 2:
        return None
    r = auc_delong(y, part[col].to_numpy())
    return {"auc": r.auc, "auc_ci": [r.ci_low, r.ci_high], "n_pos": int(y.sum()), "n_neg": int((~y).sum())}


def _labelled_manifest(data: Path) -> Manifest:
    """The folder's rows (every listed file present); a clear error when it has none or no benign /
    malignant row."""
    from lesiondx.data import load_manifest, require_known_labels, require_task_layout

    manifest = load_manifest(data)
    require_task_layout(manifest, "us-liver")
    csv = manifest.root / "labels.csv"
    frame = manifest.frame
    if frame.empty:
        raise ValueError(f"{csv}: labels.csv has no rows")
    if not frame["label"].isin(["benign", POSITIVE]).any():
        found = ", ".join(f"{k} ({v})" for k, v in frame["label"].value_counts().sort_index().items())
        raise ValueError(f"{csv}: no benign or malignant rows to evaluate (labels: {found}); us-liver "
                         "classifies focal liver lesions on ultrasound as benign or malignant")
    require_known_labels(manifest, "us-liver")
    manifest.require_files()
    return manifest


def _row_grey(path: str | Path) -> np.ndarray:
    """A row's frame in grey 0..255 through :func:`lesiondx.io.read_image`: inside ``evaluate``'s
    ``shared_decodes`` block the decode the screen made (the first frame of a multi-frame file)."""
    from lesiondx.io import read_image

    from .inputs import to_grey_255

    image = read_image(path)
    return to_grey_255(image.pixels[0] if image.is_volume else image.pixels)


def _usable_row(row: pd.Series) -> None:
    """Raise ``ImageReadError`` (``InputRefused`` from the us-liver gate) when a row's frame or masks cannot
    be used: what ``evaluate`` excludes."""
    from lesiondx.gate import require
    from lesiondx.io import read_image

    image = read_image(row["image"])
    require("us-liver", image.slice(0) if image.is_volume else image, row["image"])
    read_frame(_row_grey(row["image"]), *(row.get(c) for c in ("lesion_mask", "liver_mask", "sector_mask")))


def _report(preds: pd.DataFrame, out: Path, settings: EvalSettings) -> dict:
    """predictions.csv + its settings beside it, then the report through the path ``lesiondx report`` takes."""
    from lesiondx.stats.evaluation import report_from_csv, write_predictions

    csv = write_predictions(preds, out / "predictions.csv", settings)
    return dict(report_from_csv(csv, out, settings).metrics)


def evaluate(model: str, data: Path, out: Path, strict: bool = False) -> dict:
    """predictions.csv (+ predictions.settings.json), metrics.json and report.html: malignant vs benign
    (other labels excluded and counted) at the model's fixed threshold, with the segmenter's proposed
    ROIs as ``predict`` uses them (rows whose frame or masks cannot be read, or that the us-liver gate refuses,
    are excluded and listed in ``excluded``; ``strict`` stops at the first); with lesion outlines also the ground-truth-ROI report
    (``ground_truth_roi/``), plus normal frames and the 1024-wide subgroup. ``summary``: terminal lines."""
    from lesiondx.stats.evaluation import EvalSettings, summary_lines

    from lesiondx.data import lead_lines, no_rows_left, report_notes, screen_rows, seen_in_training

    from lesiondx.io import EVALUATE_MAX_BYTES, shared_decodes

    bundle = load_bundle(model)
    out = Path(out)
    with shared_decodes(max_bytes=EVALUATE_MAX_BYTES):  # a frame read by the screen is not decoded again to score it
        screened = screen_rows(_labelled_manifest(Path(data)), _usable_row, strict=strict)
        if no_rows_left(screened):
            raise ValueError(no_rows_left(screened))
        preds = _score_rows(bundle, screened.manifest.frame)
    seen = seen_in_training(resolve_model(model).parent, screened.manifest)
    frame = screened.manifest.frame
    out.mkdir(parents=True, exist_ok=True)
    outlines = int(frame["lesion_mask"].notna().sum()) if "lesion_mask" in frame.columns else 0
    found = preds["score"].notna()
    # a frame where the segmenter found nothing gets score 0 (called benign): counted, not dropped
    preds = preds.assign(score=preds["score"].fillna(0.0), lesion_found=found)
    notes = ["ROIs proposed by the model: " + (f"outlines given for {outlines} frame(s) are used only for the "
                                               "ground-truth-ROI figures" if outlines else "no outlines given")]
    notes += report_notes(seen, screened)
    lesion_rows = preds["label"].isin(["benign", POSITIVE])
    if (~found & lesion_rows).any():
        notes.append(f"{int((~found & lesion_rows).sum())} benign/malignant frame(s) where the segmenter found no "
                     "lesion are scored 0 (called benign) and counted.")
    settings = EvalSettings(
        positive=(POSITIVE,), negative=("benign",), threshold=bundle.threshold,
        threshold_source=f"the model's shipped threshold ({bundle.version}; Youden on inner-validation scores at "
                         "training time)",
        title=f"DCNN-US ({bundle.version}) — benign vs malignant, proposed ROIs", notes=tuple(notes))
    try:
        metrics = _report(preds, out, settings)
    except ValueError as exc:
        if not screened.excluded:
            raise
        metrics = {"image": None, "patient": None, "not_evaluated": f"after the exclusions: {exc}"}
    summary = summary_lines(metrics) if metrics["image"] is not None else [f"not evaluated: {metrics['not_evaluated']}"]
    summary = lead_lines(seen, screened, summary)
    gt = preds[lesion_rows].dropna(subset=["score_gt_roi"])
    if len(gt):
        try:
            gt_m = _report(gt.assign(score=gt["score_gt_roi"]), out / "ground_truth_roi", replace(
                settings, title=f"DCNN-US ({bundle.version}) — ground-truth lesion ROIs", notes=()))
        except ValueError as exc:
            metrics["ground_truth_roi"] = {"note": f"not evaluated: {exc}"}
        else:
            metrics["ground_truth_roi"] = {"image": gt_m["image"], "patient": gt_m["patient"]}
            summary.append(f"with the ground-truth lesion outlines: AUC {gt_m['image']['auc']:.3f} "
                           f"({gt_m['image']['auc_ci'][0]:.3f}–{gt_m['image']['auc_ci'][1]:.3f}), ground_truth_roi/")
    scored = preds[lesion_rows]
    wide = scored[scored["width"] == 1024]
    metrics["subgroup_1024_wide"] = {"proposed_roi": _auc(wide, "score"), "ground_truth_roi": _auc(wide, "score_gt_roi")}
    normal = preds[preds["label"].eq("normal")]["score"]
    metrics["normal"] = {"n": int(len(normal)), "mean": float(normal.mean()) if len(normal) else None,
                         "quantiles_10_50_90": normal.quantile([0.1, 0.5, 0.9]).tolist() if len(normal) else None,
                         "called_malignant": float((normal >= bundle.threshold).mean()) if len(normal) else None}
    if len(normal):
        summary.append(f"normal frames (excluded above): {metrics['normal']['called_malignant']:.0%} of "
                       f"{len(normal)} called malignant at the fixed threshold")
    iou = scored["proposal_box_iou"].dropna()
    metrics["roi_proposal"] = {"outlines_given": outlines, "no_lesion_found": int((~found & lesion_rows).sum()),
                               "box_iou_median": float(iou.median()) if len(iou) else None,
                               "box_iou_ge_0.5": float((iou >= 0.5).mean()) if len(iou) else None}
    metrics.update(screened.fields() | seen.fields())
    metrics["model_version"] = bundle.version
    metrics["threshold_source"] = "Youden on inner-validation scores at training time (fixed)"
    metrics["summary"] = summary
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def predict(inputs: list[Path], model: str = "default", out: Path | None = None, **options: object) -> dict:
    """Per frame: the input gate's verdict (refused inputs raise ``InputRefused``; flagged ones carry
    ``out_of_scope_flag``), lesion box (proposed, or ``roi="x,y,w,h"`` / a mask path), P(malignant), label at
    the shipped threshold, a heat-map overlay PNG (CAM on ONNX Runtime, Grad-CAM on torch; ``cam=False`` skips
    it), ``lesion_size_mm`` when the file gives pixel spacing (ultrasound DICOM regions), ``ood`` (distance to
    the training frames in the heads' feature space, its threshold, and whether it is exceeded: then
    ``out_of_scope_flag`` is set too). When the segmenter's peak lesion probability ``p_lesion`` is below
    ``no_lesion_below`` (and no ROI was given) the label is "no focal lesion found", with no box and no
    malignancy probability. Multi-frame DICOM: every frame, or ``frame=N`` (0-based). JSON-serialisable."""
    bundle = load_bundle(model)
    roi, cam = options.get("roi"), bool(options.get("cam", True))
    frame_opt = options.get("frame")
    frame_index = None if frame_opt in (None, "") else int(str(frame_opt))
    if roi not in (None, "") and len(inputs) > 1:  # one lesion box cannot fit several frames' lesions
        raise ImageReadError(Path(inputs[0]), f"roi {roi!r} is the lesion box of one image, but {len(inputs)} files "
                                              "were given; give one file with it")
    items = read_us_inputs([Path(p) for p in inputs], frame_index)  # gated before any model runs
    ood_stats = load_stats(resolve_model(model).parent / "ood_stats.npz")
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    results = []
    cut = no_lesion_below(model, bundle.config.no_lesion_below)
    for item in items:
        t = time.perf_counter()
        try:
            frame, source, peak = frame_for(bundle, item.grey, roi)
        except ImageReadError as exc:
            raise ImageReadError(item.path, "no lesion found by the segmenter; give roi='x,y,w,h'") from exc
        except ValueError as exc:  # the user's ROI cannot be used on this frame
            raise ImageReadError(item.path, str(exc)) from exc
        fields = result_fields([item.verdict], item.warnings)
        if not lesion_present(peak, cut, source):  # its own output: no box, no malignancy probability
            ood = ood_result(bundle, frame, ood_stats) | {"basis": CANDIDATE_BASIS}  # is "no lesion" in-distribution?
            if ood["out_of_distribution"]:
                fields |= {"out_of_scope_flag": True, "validated_on_input": False}
            overlay = None
            if out_dir is not None:
                suffix = f"_frame{item.frame:03d}" if item.frame is not None else ""
                overlay = str(save_overlay(out_dir / f"{item.path.stem}{suffix}_us_liver.png", frame.grey, caption=(
                    ("OUTSIDE VALIDATED INPUTS; " if fields["out_of_scope_flag"] else "") +
                    f"{NO_LESION.upper()} (segmenter lesion probability {peak:.2f} < {cut:.2f}); give an ROI if you "
                    "see one - research use, not a diagnosis")))
            results.append({**no_lesion_result(item.path, peak, cut, overlay, bundle.version, time.perf_counter() - t,
                                               ood), "frame": item.frame, **fields})
            continue
        scored = score_frame(bundle, frame, cam=cam and out_dir is not None, roi_source=source)
        label = POSITIVE if scored.probability >= bundle.threshold else "benign"
        ood = ood_result(bundle, frame, ood_stats)
        if ood["out_of_distribution"]:  # far from every training frame in the heads' feature space
            fields |= {"out_of_scope_flag": True, "validated_on_input": False}
        overlay, cam_peak = None, heatmap_peak(scored.heatmap, scored.box)
        if out_dir is not None:
            suffix = f"_frame{item.frame:03d}" if item.frame is not None else ""
            overlay = str(out_dir / f"{item.path.stem}{suffix}_us_liver.png")
            save_overlay(overlay, scored.grey, heatmap=scored.heatmap, boxes=[scored.box], box_labels=[f"{source} ROI"],
                         caption=("OUTSIDE VALIDATED INPUTS; " if fields["out_of_scope_flag"] else "")
                                 + f"P(malignant) = {scored.probability:.2f} ({label}, threshold {bundle.threshold:.2f}); "
                                 f"heat map: {bundle.heatmap_method} evidence for '{label}'"
                                 + (f" (its {PEAK_OUTSIDE})" if cam_peak and not cam_peak["inside_roi"] else "")
                                 + " - research use, not a diagnosis")
        results.append({"image": str(item.path), "frame": item.frame, "box": scored.box.as_list(), "roi_source": source,
                        "p_lesion": peak, "lesion_probability": peak, "lesion_found": True, "no_lesion_threshold": cut,
                        "probability": scored.probability, "label": label, "threshold": bundle.threshold,
                        "pixel_spacing_mm": list(item.spacing_mm) if item.spacing_mm else None,
                        "lesion_size_mm": lesion_size_mm(scored.box.width, scored.box.height, item.spacing_mm),
                        "ood": ood, "heatmap_peak": cam_peak, **fields,
                        "overlay": overlay, "model_version": bundle.version, "seconds": time.perf_counter() - t})
    return {"task": "us-liver", "model_version": bundle.version, "results": results,
            "out_of_scope_flag": any(r["out_of_scope_flag"] for r in results)}
