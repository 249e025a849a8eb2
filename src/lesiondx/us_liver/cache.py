"""Crops and frozen-trunk features, computed once per image (clean + augmented copies)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lesiondx.progress import track

from .config import UsLiverConfig
from .model import Trunk
from .rois import UsFrame, read_frame, sector_box, ultrasonic_factors
from .views import frame_crops  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class FeatureCache:
    """Trunk features per image: ``lesion``/``background`` are ``(N, copies+1, C, h, w)`` fp16,
    copy 0 clean; ``table`` holds ids, labels, groups and the size/scanner/mask factors."""

    table: pd.DataFrame
    lesion: torch.Tensor
    background: torch.Tensor


def describe(frame: UsFrame) -> dict[str, float]:
    """Size-and-scanner factors (baseline only, never model inputs) and mask-derived factors."""
    h, w = frame.grey.shape
    out = {"width": float(w), "height": float(h), "lesion_area": float(frame.lesion.sum()) if frame.lesion is not None else np.nan}
    if frame.lesion is not None:
        out.update(ultrasonic_factors(frame.lesion, sector_box(frame)))
    return out


@torch.no_grad()
def trunk_features(trunk: Trunk, crops: np.ndarray, batch: int = 32) -> torch.Tensor:
    """Frozen-trunk feature maps for ``(N, S, S)`` crops, fp16."""
    trunk.eval()
    x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))
    return torch.cat([trunk(x[i : i + batch]).half() for i in range(0, len(x), batch)])


def build_cache(rows: pd.DataFrame, cfg: UsLiverConfig, trunk: Trunk, *, copies: int, seed: int,
                frames: list[UsFrame] | None = None) -> FeatureCache:
    """Features of every row (must have lesion masks, or give ``frames`` with proposed masks)."""
    rng = np.random.default_rng(seed)
    lesion, background, info = [], [], []
    items = list(rows.itertuples(index=False))
    for i, row in enumerate(track(items, f"caching crops ×{copies + 1}")):
        frame = frames[i] if frames is not None else read_frame(row.image, row.lesion_mask, row.liver_mask, row.sector_mask)
        les, bg = frame_crops(frame, cfg, rng, copies)
        lesion.append(trunk_features(trunk, les))
        background.append(trunk_features(trunk, bg))
        info.append(describe(frame))
    return FeatureCache(labelled_table(rows, info), torch.stack(lesion), torch.stack(background))


def labelled_table(rows: pd.DataFrame, info: list[dict[str, float]]) -> pd.DataFrame:
    """The manifest rows with each frame's :func:`describe` factors and ``y`` (1 = malignant)."""
    table = pd.concat([rows.reset_index(drop=True), pd.DataFrame(info)], axis=1)
    table["y"] = table["label"].astype(str).eq("malignant").astype(int)
    return table


def stored(path: Path | None, rows: pd.DataFrame, build: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The tensors saved at ``path`` (a dict with a ``table``) when present, else ``build()``, saved there;
    ``path`` None: always built, never saved. A saved table must list ``rows``' image ids, in order."""
    if path is not None and path.is_file():
        blob = torch.load(path, weights_only=False)
        if list(blob["table"]["image_id"]) != list(rows["image_id"]):
            raise ValueError(f"{path}: cached rows do not match the data; delete the cache")
        return blob
    blob = build()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(blob, path)
    return blob


def cache_name(cfg: UsLiverConfig, digest: str) -> str:
    """File name of a feature cache: everything that changes the cached features is in it."""
    policy = "" if cfg.augment_policy == "speckle" else f"{cfg.augment_policy}_"
    return (f"features_{policy}{cfg.backbone}_t{cfg.trainable_tail}_{cfg.crop_size}_{cfg.crop_side_frac}_{cfg.crop_margin}"
            f"_{cfg.background_margin_px}_x{cfg.augment_copies}_s{cfg.seed}_{digest[:12]}.pt")


def cached_features(rows: pd.DataFrame, cfg: UsLiverConfig, trunk: Trunk, path: Path | None) -> FeatureCache:
    """``build_cache`` with the clean + ``cfg.augment_copies`` copies, stored at / reused from ``path``
    (the table's manifest columns are always today's ``rows``)."""

    def build() -> dict[str, Any]:
        cache = build_cache(rows, cfg, trunk, copies=cfg.augment_copies, seed=cfg.seed)
        return {"table": cache.table, "lesion": cache.lesion, "background": cache.background}

    blob = stored(path, rows, build)
    table = rows.reset_index(drop=True).join(blob["table"].drop(columns=rows.columns, errors="ignore"))
    return FeatureCache(table, blob["lesion"], blob["background"])
