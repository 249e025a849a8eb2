"""Segmentation evaluation on slices with infection masks (MedSeg layout): Dice per slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lesiondx.data import Manifest
from lesiondx.io import read_raster_array
from lesiondx.models import dice_score
from lesiondx.progress import track
from lesiondx.stats import bootstrap_statistic
from lesiondx.stats.report import to_jsonable

from .lung import lung_field
from .model import LoadedModel, predict_probs
from .pipeline import resize_stack


def evaluation_rows(manifest: Manifest) -> pd.DataFrame:
    """Rows with an infection mask; only ``split == 'test'`` rows when a split column exists."""
    frame = manifest.frame[manifest.frame["infection_mask"].notna()]
    if "split" in frame.columns:
        frame = frame[frame["split"].astype(str).str.lower() == "test"]
    if frame.empty:
        raise ValueError(f"{manifest.root / 'labels.csv'}: no rows with an infection mask to evaluate (split 'test')")
    return frame.reset_index(drop=True)


def segment_slices(manifest: Manifest, model: LoadedModel) -> pd.DataFrame:
    """Per slice: Dice, sensitivity and specificity of the lesion mask at ``prob_threshold`` (original
    resolution), without and with the lung-field filter (border air kept: MedSeg slices are cropped)."""
    cfg = model.config
    rows = []
    for _, row in track(list(evaluation_rows(manifest).iterrows()), "ct-covid segmentation"):
        grey = read_raster_array(row["image"], grey=True).astype(np.float32)
        truth = read_raster_array(row["infection_mask"], grey=True) > 0
        small = resize_stack(grey[None], (cfg.input_size, cfg.input_size))
        prob_small = predict_probs(model.module, small, batch=1)
        lung = lung_field(small[0], cfg.lung_threshold_grey, min_area=cfg.lung_min_area, closing=cfg.lung_closing,
                          remove_border_air=False)
        prob = resize_stack(prob_small, truth.shape)[0]
        lung_full = resize_stack(lung[None].astype(np.float32), truth.shape, nearest=True)[0] > 0.5
        pred = prob >= cfg.prob_threshold
        record = {"image_id": row["image_id"], "infection_pixels": int(truth.sum()), "dice": dice_score(pred, truth),
                  "dice_lung": dice_score(pred & lung_full, truth),
                  "sensitivity": float((pred & truth).sum() / max(1, truth.sum())),
                  "specificity": float((~pred & ~truth).sum() / max(1, (~truth).sum())),
                  "truth_in_lung": float((truth & lung_full).sum() / max(1, truth.sum()))}
        rows.append(record)
    return pd.DataFrame(rows)


def summarise_dice(table: pd.DataFrame, n_boot: int = 2000) -> dict[str, Any]:
    """Mean of each per-slice column with a percentile-bootstrap 95% CI over slices."""
    out: dict[str, Any] = {"n_slices": len(table),
                           "note": "no patient ids in MedSeg: slices of one patient may be on both sides of train/test, "
                                   "and the CI resamples slices, not patients"}
    for column in ("dice", "dice_lung", "sensitivity", "specificity", "truth_in_lung"):
        values = table[column].to_numpy(float)
        ci = bootstrap_statistic(lambda idx, v=values: float(np.mean(v[idx])), len(values), n_boot=n_boot)
        out[column] = {"mean": float(values.mean()), "ci": [ci.ci_low, ci.ci_high]}
    return to_jsonable(out)


def evaluate_segmentation(manifest: Manifest, model: LoadedModel, out: Path) -> dict[str, Any]:
    """Write ``segmentation.csv`` and return the Dice summary (the ``segmentation`` section)."""
    table = segment_slices(manifest, model)
    table.to_csv(out / "segmentation.csv", index=False)
    return summarise_dice(table)
