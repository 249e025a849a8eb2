"""Training the lesion segmenter on windowed 8-bit slices with infection masks (MedSeg layout)."""

from __future__ import annotations

import csv
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from lesiondx.data import Manifest, as_manifest, grouped_split
from lesiondx.io import read_raster_array, resize
from lesiondx.models import bce_dice_loss, save_checkpoint, size_mb
from lesiondx.progress import track
from lesiondx.models.training import optimise_step

from .config import CovidConfig
from .model import CHECKPOINT, build_model, checkpoint_meta, predict_probs, to_input


@dataclass(frozen=True)
class SliceSet:
    """Slices and masks resized to the model input: ``images`` (N, S, S) grey 0..255, ``masks`` (N, S, S) 0/1."""

    images: np.ndarray
    masks: np.ndarray
    ids: tuple[str, ...]


def training_rows(manifest: Manifest) -> pd.DataFrame:
    """Rows with an infection mask, restricted to ``split == 'train'`` when a split column exists."""
    frame = manifest.frame
    if "infection_mask" not in frame.columns:
        raise ValueError(f"{manifest.root}: ct-covid training needs an infection_mask column (MedSeg layout)")
    frame = frame[frame["infection_mask"].notna()]
    if "split" in frame.columns:
        frame = frame[frame["split"].astype(str).str.lower() == "train"]
    if len(frame) < 2:
        raise ValueError(f"{manifest.root}: fewer than 2 training slices with infection masks")
    return frame.reset_index(drop=True)


def load_slices(frame: pd.DataFrame, size: int) -> SliceSet:
    """Read images (grey, already windowed) and masks (> 0 = infection) at ``size``²."""
    images, masks = [], []
    for image_path, mask_path in track(list(zip(frame["image"], frame["infection_mask"])), "reading slices"):
        grey = read_raster_array(image_path, grey=True)
        mask = read_raster_array(mask_path, grey=True) > 0
        if grey.shape != mask.shape:
            raise ValueError(f"{mask_path}: mask shape {mask.shape} differs from image {grey.shape}")
        images.append(resize(grey.astype(np.float32), (size, size), order=1))
        masks.append(resize(mask.astype(np.float32), (size, size), order=0) > 0.5)
    return SliceSet(np.stack(images).astype(np.float32), np.stack(masks).astype(np.float32), tuple(frame["image_id"]))


def augment(x: torch.Tensor, y: torch.Tensor, config: CovidConfig, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips, rotation (any quarter turn ± ``rotate_degrees``), scale (geometry shared by image and mask) and intensity (gamma,
    contrast, brightness, noise) on a batch ``x`` in [-1, 1], ``y`` in {0, 1}, both ``(B, 1, H, W)``."""
    b = x.shape[0]
    u = lambda *shape: torch.rand(*shape, generator=gen)  # noqa: E731
    quarter = torch.floor(u(b) * 4) * (math.pi / 2)  # MedSeg slices come in several orientations
    angle = (u(b) * 2 - 1) * math.radians(config.rotate_degrees) + quarter
    lo, hi = config.scale_range
    scale = lo + u(b) * (hi - lo)
    flip = torch.where(u(b) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    shift = (u(b, 2) * 2 - 1) * 0.1
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1
    y = (F.grid_sample(y, grid, mode="nearest", padding_mode="zeros", align_corners=False) > 0.5).float()
    unit = (x + 1) / 2
    gamma = torch.exp((u(b, 1, 1, 1) * 2 - 1) * 0.35)
    unit = unit.clamp(0, 1) ** gamma
    unit = (unit - 0.5) * (0.85 + 0.3 * u(b, 1, 1, 1)) + 0.5 + (u(b, 1, 1, 1) * 2 - 1) * 0.08
    unit = unit + torch.randn(unit.shape, generator=gen) * 0.02 * u(b, 1, 1, 1)
    return unit.clamp(0, 1) * 2 - 1, y


def negative_slices(folders: list[Path | Manifest], config: CovidConfig) -> SliceSet:
    """Model inputs of every negative slice of the CT-MD-layout ``folders`` (see :class:`CovidConfig`), with
    all-zero masks; patients in ``config.exclude_patients`` are skipped."""
    from .evaluation import read_patient_slices
    from .pipeline import prepare_inputs

    images, ids = [], []
    excluded = {str(p) for p in config.exclude_patients}
    for source in folders:
        manifest = as_manifest(source)
        frame, folder = manifest.frame, manifest.root
        for column in ("patient_id", "slice_index", "label"):
            if column not in frame.columns:
                raise ValueError(f"{folder / 'labels.csv'}: negative_data needs a {column!r} column (CT-MD layout)")
        for patient, rows in frame.groupby("patient_id", sort=True):
            rows = rows.sort_values("slice_index")
            negative = _negative_slices_of(rows, config, excluded)
            if not negative.any():
                continue
            pixels, is_hu, _ = read_patient_slices(rows)
            grey = prepare_inputs(pixels, config, is_hu=is_hu).grey
            images.append(grey[negative])
            ids += [f"{patient}:{i}" for i in rows["slice_index"].to_numpy(int)[negative]]
    if not ids:
        size = config.input_size
        return SliceSet(np.zeros((0, size, size), np.float32), np.zeros((0, size, size), np.float32), ())
    stack = np.concatenate(images).astype(np.float32)
    return SliceSet(stack, np.zeros_like(stack), tuple(ids))


def _negative_slices_of(rows: pd.DataFrame, config: CovidConfig, excluded: set[str]) -> np.ndarray:
    """Which of one patient's slices (rows ordered by ``slice_index``) train as negatives: all of a patient
    with a negative label, the ``infection == 0`` slices of a pneumonia patient with slice labels, none of an
    excluded patient or of a pneumonia patient without slice labels."""
    if str(rows["patient_id"].iloc[0]) in excluded:
        return np.zeros(len(rows), bool)
    if not config.is_positive(rows["label"].iloc[0]):
        return np.ones(len(rows), bool)
    if "infection" not in rows.columns:
        return np.zeros(len(rows), bool)
    return rows["infection"].to_numpy(int) == 0


def negative_rows(folder: Manifest, config: CovidConfig) -> pd.DataFrame:
    """The rows of a ``negative_data`` folder whose slices :func:`negative_slices` trains on."""
    excluded = {str(p) for p in config.exclude_patients}
    keep = pd.Series(False, index=folder.frame.index)
    for _, rows in folder.frame.groupby("patient_id"):
        keep[rows.index] = _negative_slices_of(rows, config, excluded)
    return folder.frame[keep]


def resolve_folders(names: tuple[str, ...], data: Path) -> list[Path]:
    """``negative_data`` entries as folders: absolute, or relative to the training folder's parent."""
    folders = [Path(n) if Path(n).is_absolute() else Path(data).resolve().parent / n for n in names]
    for folder in folders:
        if not (folder / "labels.csv").is_file():
            raise FileNotFoundError(f"{folder}: negative_data folder has no labels.csv")
    return folders


def initial_model(config: CovidConfig):
    """A fresh segmenter, or the weights of ``config.init_from`` (a model folder or ``"default"``)."""
    if not config.init_from:
        return build_model(config)
    from lesiondx.models import load_checkpoint

    from .model import resolve_model_dir

    states, _ = load_checkpoint(resolve_model_dir(config.init_from) / CHECKPOINT)
    model = build_model(config, pretrained=False)
    model.load_state_dict(states["model"])
    return model


def mean_dice(probs: np.ndarray, masks: np.ndarray, threshold: float = 0.5) -> float:
    """Mean per-slice hard Dice (1.0 for a slice where both masks are empty)."""
    pred, truth = probs >= threshold, masks > 0.5
    inter = (pred & truth).sum(axis=(1, 2))
    total = pred.sum(axis=(1, 2)) + truth.sum(axis=(1, 2))
    return float(np.mean(np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))))


@dataclass(frozen=True)
class SegmenterRun:
    """A finished training: the checkpoint written and the ``image_id`` of every slice it used (train and
    validation rows, as in ``split.csv``)."""

    checkpoint: Path
    image_ids: tuple[str, ...]


def train_segmenter(data: Path | Manifest, run_dir: Path, config: CovidConfig,
                    negatives: list[Path | Manifest] | None = None) -> SegmenterRun:
    """Train on ``data`` (MedSeg layout folder, or its manifest), keep the best validation-Dice epoch; return the
    checkpoint path and the slices used.

    ``negatives``: the ``negative_data`` folders (or their checked manifests); default: resolved from the config.
    Writes ``run_dir/model.pt``, ``history.csv`` and ``split.csv``. MedSeg has no patient ids, so the
    validation slices are grouped per slice only (slices of one patient may sit on both sides).
    """
    torch.manual_seed(config.seed)
    torch.set_num_threads(max(1, config.threads))
    manifest = as_manifest(data)
    manifest.require_files()
    frame = training_rows(manifest)
    if config.max_train_images:
        frame = frame.sample(n=min(config.max_train_images, len(frame)), random_state=config.seed).reset_index(drop=True)
    split = grouped_split(frame, val=config.val_fraction, test=0.0, stratify=None, seed=config.seed)
    frame.assign(split=split).loc[:, ["image_id", "patient_id", "split"]].to_csv(run_dir / "split.csv", index=False)
    train_set = load_slices(frame[split == "train"], config.input_size)
    val_set = load_slices(frame[split == "val"], config.input_size)
    negatives = negative_slices(negatives if negatives is not None else
                                resolve_folders(config.negative_data, manifest.root), config)
    model = initial_model(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    x_all, y_all = to_input(train_set.images), torch.as_tensor(train_set.masks).unsqueeze(1)
    x_neg = to_input(negatives.images)
    n_neg = int(round(config.batch_size * config.negative_share)) if len(negatives.ids) else 0
    per_batch = config.batch_size - n_neg
    steps = max(1, math.ceil(len(train_set.images) / per_batch)) * config.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=steps, pct_start=0.1)
    best, best_state, history = -1.0, None, []
    started = time.time()
    for epoch in track(range(config.epochs), "training ct-covid"):
        model.train()
        order = torch.randperm(len(x_all), generator=gen)
        losses = []
        for start in range(0, len(order), per_batch):
            idx = order[start : start + per_batch]
            if len(idx) < 2:
                continue  # batch-norm needs two samples
            x, y = x_all[idx], y_all[idx]
            if n_neg:
                neg = torch.randint(len(x_neg), (n_neg,), generator=gen)
                x = torch.cat([x, x_neg[neg]])
                y = torch.cat([y, torch.zeros((n_neg, *y.shape[1:]))])
            x, y = augment(x, y, config, gen)
            loss = bce_dice_loss(model(x), y)
            losses.append(optimise_step(loss, optimiser, scheduler))
        val = mean_dice(predict_probs(model, val_set.images, batch=config.infer_batch), val_set.masks) if len(val_set.ids) else float("nan")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
                        "val_dice": val, "seconds": round(time.time() - started, 1)})
        with open(run_dir / "history.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        if not len(val_set.ids) or n_neg or val > best:  # with negatives: the last epoch
            best = val
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    meta = checkpoint_meta(config, data=str(manifest.root), n_train=len(train_set.ids), n_val=len(val_set.ids),
                           best_val_dice=best, epochs=config.epochs,
                           n_negative_slices=len(negatives.ids), excluded_patients=list(config.exclude_patients), seconds=round(time.time() - started, 1),
                           model_version=f"ct-covid-{config.arch}-{config.encoder}-{run_dir.name}")
    path = save_checkpoint(run_dir / CHECKPOINT, {"model": model}, meta)
    if size_mb(path) > 25:
        print(f"warning: {path} is {size_mb(path):.1f} MB, over the 25 MB limit for shipped models")
    return SegmenterRun(path, tuple(frame["image_id"].astype(str)))
