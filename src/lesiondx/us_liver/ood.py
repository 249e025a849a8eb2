"""Out-of-distribution score of us-liver: how far a frame's Model_LBM features lie from the training frames.

Feature space: the frozen Lite0 probe features the shipped heads read (clean L/B/M views, 5712 values),
standardised, projected on the top ``n_components`` principal axes of the training frames and whitened
(unit variance per axis: a Mahalanobis distance in that subspace). Score = mean distance to the
``k`` nearest training frames. Threshold = the 99th percentile of the training frames' leave-one-out
scores; the false-alarm rate on a held-out fold is in the model card. ``python -m lesiondx.us_liver.ood
DATA OUT.npz [N_FIT N_HELD]`` rebuilds the statistics (``models/us-liver/ood_stats.npz``; with N_FIT/N_HELD an
evenly spaced subsample of the training / held-out frames, ground-truth ROIs only).
"""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from lesiondx.gate.ood import QUANTILE, OodStats, fit_ood, save_stats

from .inference import Bundle
from .rois import UsFrame


def frame_features(bundle: Bundle, frame: UsFrame) -> np.ndarray:
    """``(1, D)`` clean-view probe features of a frame whose lesion ROI is set (as the heads see it): the
    exported classifier's ``features`` output on ONNX Runtime, the probe trunk on torch."""
    if hasattr(bundle, "features"):  # ONNX Runtime bundle: no torch
        return bundle.features(frame)
    import torch

    from .probe import view_crops

    cfg = bundle.config
    trunk = getattr(getattr(bundle, "ensemble", None), "trunk", None)
    if not isinstance(trunk, torch.nn.Module):
        trunk = _trunk(tuple(cfg.levels), cfg.backbone)
    crops = view_crops(frame, cfg, np.random.default_rng(cfg.seed), 0)
    with torch.no_grad():
        feats = [trunk(torch.from_numpy(np.ascontiguousarray(crops[v], dtype=np.float32))) for v in cfg.views]
    return torch.cat(feats, 1).numpy()


@lru_cache(maxsize=1)
def _trunk(levels: tuple[str, ...], backbone: str):
    from .probe import pooled_trunk

    return pooled_trunk(levels, backbone)


def ood_result(bundle: Bundle, frame: UsFrame, stats: OodStats | None) -> dict:
    """``{"score", "threshold", "out_of_distribution"}`` for the output JSON (``None`` values without stats)."""
    if stats is None or bundle.config.head != "probe":
        return {"score": None, "threshold": None, "out_of_distribution": None,
                "note": "no out-of-distribution statistics for this model"}
    score = float(stats.score(frame_features(bundle, frame))[0])
    return {"score": round(score, 3), "threshold": round(stats.threshold, 3), "out_of_distribution": score > stats.threshold}


def build(data: Path, out: Path, *, max_fit: int = 0, max_held: int = 0, extras: bool = True) -> dict:
    """Fit on folds 1–4 of the shipped model's grouped 5-fold split (ground-truth ROIs), measure the
    false-alarm rate on fold 0 (ground-truth and, with ``extras``, proposed ROIs; and the normal frames);
    write ``out``. ``max_fit`` / ``max_held`` > 0: an evenly spaced subsample of that many frames (speed)."""
    import pandas as pd

    from lesiondx.data import grouped_kfold, load_manifest

    from .benchmark import classifier_rows
    from .inference import load_bundle
    from .rois import read_frame
    from .segment import propose

    bundle = load_bundle("default", engine="torch")  # a training-time tool: propose() is the torch segmenter path
    cfg = bundle.config
    frame = load_manifest(data).frame
    rows = classifier_rows(frame.assign(fold=grouped_kfold(frame, cfg.folds, seed=cfg.seed)))
    parts = [rows[rows["fold"] != 0], rows[rows["fold"] == 0]]
    for i, n in enumerate((max_fit, max_held)):
        if 0 < n < len(parts[i]):
            parts[i] = parts[i].iloc[np.linspace(0, len(parts[i]) - 1, n).astype(int)]
    rows = pd.concat(parts).reset_index(drop=True)
    feats, proposed = [], {}
    for row in rows.itertuples(index=False):
        us = read_frame(row.image, row.lesion_mask, row.liver_mask, row.sector_mask)
        feats.append(frame_features(bundle, us)[0])
        if row.fold == 0 and extras:
            prop = propose(bundle.segmenter, us.grey, cfg.seg_size)
            if prop.box is not None:
                used = UsFrame(us.grey, prop.lesion, prop.liver if prop.liver.any() else None,
                               prop.sector if prop.sector.any() else None)
                proposed[row.image_id] = frame_features(bundle, used)[0]
    x = np.stack(feats)
    fold = rows["fold"].to_numpy()
    stats = fit_ood(x[fold != 0])
    held = stats.score(x[fold == 0])
    held_prop = stats.score(np.stack(list(proposed.values()))) if proposed else np.array([])
    normal_scores = []
    for row in frame[frame["label"].astype(str).eq("normal") & extras].itertuples(index=False):
        us = read_frame(row.image)
        prop = propose(bundle.segmenter, us.grey, cfg.seg_size)
        if prop.box is not None:
            used = UsFrame(us.grey, prop.lesion, prop.liver if prop.liver.any() else None,
                           prop.sector if prop.sector.any() else None)
            normal_scores.append(float(stats.score(frame_features(bundle, used))[0]))
    report = {
        "fitted_on": f"{int((fold != 0).sum())} benign/malignant AUL frames of folds 1-4 (ground-truth ROIs, clean views)",
        "threshold": stats.threshold, "threshold_rule": f"{QUANTILE:.0%} quantile of leave-one-out training scores",
        "n_components": int(stats.axes.shape[0]), "neighbours": stats.neighbours,
        "fold0_ground_truth_roi": {"n": int(len(held)), "false_alarm_rate": float((held > stats.threshold).mean()),
                                    "median_score": float(np.median(held))},
        "fold0_proposed_roi": {"n": int(len(held_prop)), "false_alarm_rate": float((held_prop > stats.threshold).mean())
                               if len(held_prop) else None,
                               "median_score": float(np.median(held_prop)) if len(held_prop) else None},
        "normal_frames_proposed_roi": {"n": len(normal_scores),
                                       "share_above": float(np.mean(np.array(normal_scores) > stats.threshold)) if normal_scores else None},
    }
    save_stats(stats, out, report)
    return report


if __name__ == "__main__":
    sizes = [int(a) for a in sys.argv[3:5]] + [0, 0]
    print(json.dumps(build(Path(sys.argv[1]), Path(sys.argv[2]), max_fit=sizes[0], max_held=sizes[1],
                           extras=sizes[0] == 0), indent=2))
