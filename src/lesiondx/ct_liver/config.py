"""One configuration dataclass for the ct-liver task (defaults here; YAML/TOML via ``load_config``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lesiondx.config import load_config

DEFAULT_TREE: dict[str, list[str]] = {"malignant": ["HCC", "ICC", "MET"], "benign": ["FNH", "HEM", "cyst"]}


@dataclass(frozen=True)
class CtLiverConfig:
    """All knobs of the ct-liver task. Lengths in pixels unless the name says ``mm``; HU for CT values."""

    seed: int = 0
    # what ``train`` builds on an IRCADb-layout folder
    train_liver: bool = True
    train_detector: bool = True
    # liver filter
    liver_px: int = 256  # segmenter input side
    liver_epochs: int = 6
    liver_max_slices: int = 400  # slices sampled per training run (lesion/liver slices first)
    liver_hu_low: float = 40.0  # HU fallback: liver parenchyma range (portal-venous CT)
    liver_hu_high: float = 200.0
    inside_liver_fraction: float = 0.5  # a candidate is inside when most of its own voxels lie in the liver
    edge_claw: bool = True  # ... or most of all its voxels lie in the liver closed with a disk of its own diameter
    # (claw sign for lesions bulging out of the liver edge; benchmarks/ct_liver.md 2f)
    # detector
    detector: str = "candidates"  # default detector when no learned one: "candidates" (classical)
    detector_px: int = 320  # learned detector input side
    detector_steps: int = 600
    detector_batch: int = 4
    score_threshold: float = 0.25
    min_lesion_mm: float = 5.0  # candidate detector: smallest lesion diameter kept
    max_lesion_mm: float = 150.0
    min_contrast_hu: float = 15.0  # candidate detector: smallest margin below the parenchyma level (HU)
    search_margin_mm: float = 5.0  # candidate detector: look this far outside the liver mask (edge lesions)
    min_lesion_slices: int = 2  # candidate detector: a lesion must appear on this many adjacent slices
    hyperdense: str = "arterial"  # also find regions brighter than the liver: in "arterial" series, "all", "off"
    classifier: str = "features"  # lesion types on CT: "features" (measured enhancement rules) or "lilnet"
    classify_px: int = 224  # each box is expanded to a square crop of this many pixels
    box_margin: float = 0.25  # crop margin as a fraction of the box's longer side
    # classifier (LiLNet recipe)
    backbone: str = "efficientnet_lite0"
    lilnet: bool = True  # joint labels + quadrant masks + aux heads + self-distillation; False = plain backbone
    crop_px: int = 128
    crop_fraction: float = 0.3  # AUL: fixed crop side as a fraction of the scan-sector width
    epochs: int = 3
    batch_size: int = 32
    lr: float = 5e-4
    weight_decay: float = 1e-4
    temperature: float = 3.0  # self-distillation softening
    distill_weight: float = 1.0
    aux_weight: float = 0.5
    folds: int = 5
    label_tree: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_TREE.items()})
    threads: int = 1


def load(path: str | Path | None = None, **overrides: Any) -> CtLiverConfig:
    """Defaults, updated from ``path`` (YAML/TOML) and then from ``overrides``."""
    return load_config(CtLiverConfig, path, **overrides)
