"""Configuration of the ultrasound liver-lesion task (DCNN-US): one frozen dataclass, YAML/TOML."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lesiondx.config import ConfigError, load_config

from .rois import AUGMENT_POLICIES


@dataclass(frozen=True)
class UsLiverConfig:
    """Every knob of training; defaults are the shipped model's settings."""

    # ROIs (pixels of the original image; no pixel spacing in the JPEGs)
    crop_size: int = 192  # classifier input side (px)
    crop_side_frac: float = 0.4  # lesion crop side as a fraction of the scan-sector width (fixed scale)
    crop_margin: float = 0.15  # extra margin around lesions bigger than the fixed side (fraction)
    background_margin_px: int = 10  # lesion dilation removed from the liver background ROI
    # model: "probe" = Model_LBM, logistic heads on frozen multi-level features (lesiondx.us_liver.probe);
    # "dcnn" = Model_L / Model_LB, trained dropout → BN → linear heads (+ triplet) on trunk features
    head: str = "probe"
    # probe views: L fixed-scale lesion, B liver background, M magnified lesion, S size-free lesion (box + margin
    # brought to ``size_free_px`` native px, then to crop_size: no absolute-size blur cue)
    views: str = "LBM"
    size_free_px: int = 64  # S view: native side (px) every lesion crop is resampled to
    intensity_norm: str = "none"  # or "liver_z": frame z-scored on its liver background before cropping
    levels: tuple[str, ...] = ("b4", "b5", "b6", "head")  # probe: pooled Lite0 depths
    probe_cs: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)  # probe: L2 strengths tried on inner validation
    probe_refit: bool = True  # probe: refit on train + inner-validation rows with the chosen C
    # probe: efficientnet_lite0/1/2; dcnn: efficientnet_lite0 or resnet18 (random init offline)
    backbone: str = "efficientnet_lite0"
    branches: str = "LB"  # "L" (lesion only) or "LB" (lesion + liver background)
    trainable_tail: int = 0  # 0: fine-tune only the last 1x1 conv head; 1: also the last block (Lite0)
    dropout: float = 0.5
    # loss
    triplet_weight: float = 0.5  # 0 gives the plain BCE baseline
    triplet_margin: float = 0.3  # on L2-normalised embeddings
    background_weight: float = 0.2  # background-type supervision when such a column exists
    background_column: str = "background_type"
    # optimisation
    epochs: int = 25
    patience: int = 6  # early stopping on validation AUC (epochs)
    batch_size: int = 64
    lr: float = 1e-3  # head learning rate
    tail_lr: float = 1e-4  # learning rate of the fine-tuned backbone tail (0 freezes it)
    tta_copies: int = 3  # scores = mean over the clean crop and this many augmented crops (fixed seed)
    weight_decay: float = 1e-4
    augment_copies: int = 6  # augmented crops cached per image (flip, rotation, scale, intensity, speckle)
    # "speckle"; "trivialaugment" (flip + one TrivialAugmentWide op); "scanner" (per copy a scanner/export change
    # of the whole frame: gain, TGC, gamma, tinted colour map, resolution 300 px wide…, JPEG; then "speckle")
    augment_policy: str = "speckle"
    folds: int = 5  # grouped CV folds; shipped model = ensemble of the fold models
    seed: int = 0
    max_images: int = 0  # 0 = all; >0 subsamples (tests)
    # lesion / liver / sector segmenter (ROI proposal)
    seg_size: int = 128  # segmenter input side (px, multiple of 32)
    seg_epochs: int = 8
    seg_batch_size: int = 8
    seg_lr: float = 1e-3
    seg_max_images: int = 0  # 0 = all
    no_lesion_below: float = 0.3  # predict flags lesion_found=False below this peak lesion probability
    seg_from: str = ""  # reuse the segmenter of this checkpoint instead of training one
    cache_dir: str = ""  # keep trunk-feature caches here (keyed by data hash and ROI settings)


MIN_FOLDS = 3  # grouped CV: a test fold, an inner-validation fold and at least one training fold
# allowed range of each numeric key: (lowest, highest, the words a config error uses); None = no bound
AT_LEAST_1 = (1, None, "a whole number of at least 1")
AT_LEAST_0 = (0, None, "a whole number of at least 0")
ABOVE_0 = (0, None, "a number above 0")
NOT_NEGATIVE = (0, None, "a number of at least 0")
FRACTION = (0, 1, "a number from 0 to 1")
RANGES: dict[str, tuple[float | None, float | None, str]] = {
    **dict.fromkeys(["crop_size", "epochs", "patience", "batch_size", "seg_batch_size", "seg_size"], AT_LEAST_1),
    **dict.fromkeys(["background_margin_px", "trainable_tail", "tta_copies", "augment_copies", "max_images",
                     "seg_epochs", "seg_max_images"], AT_LEAST_0),
    **dict.fromkeys(["lr", "seg_lr"], ABOVE_0),
    **dict.fromkeys(["crop_margin", "tail_lr", "weight_decay", "triplet_weight", "triplet_margin",
                     "background_weight"], NOT_NEGATIVE),
    **dict.fromkeys(["dropout", "no_lesion_below"], FRACTION),
}


def check_ranges(config: UsLiverConfig, source: str) -> None:
    """:class:`ConfigError` naming ``source``, the first key whose value is outside its allowed range
    (:data:`RANGES`) and the allowed values; ``probe_cs`` must be numbers above 0."""
    for key, (low, high, allowed) in RANGES.items():
        value = getattr(config, key)
        whole = not allowed.startswith("a whole") or float(value).is_integer()
        if not whole or (low is not None and value < low) or (high is not None and value > high) or (
                allowed == ABOVE_0[2] and value <= 0):
            raise ConfigError(f"{source}: {key} must be {allowed}, not {value!r}")
    if not config.probe_cs or any(not isinstance(c, (int, float)) or c <= 0 for c in config.probe_cs):
        raise ConfigError(f"{source}: probe_cs must be a list of numbers above 0, not {list(config.probe_cs)!r}")


def load_us_config(path: str | Path | None = None, **overrides: object) -> UsLiverConfig:
    """Defaults, then ``path`` (YAML/TOML), then keyword overrides; checks values."""
    config = load_config(UsLiverConfig, path, **overrides)
    check_ranges(config, str(path or "config"))
    if config.branches not in ("L", "LB"):
        raise ValueError(f"branches must be 'L' or 'LB', not {config.branches!r}")
    if config.head not in ("probe", "dcnn"):
        raise ValueError(f"head must be 'probe' or 'dcnn', not {config.head!r}")
    trunks = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "mobilenet_v2")
    if config.head == "probe" and (not config.views or set(config.views) - set("LBMS") or config.backbone not in trunks):
        raise ValueError(f"probe head needs views from 'LBMS' (got {config.views!r}) and a backbone from "
                         f"{', '.join(trunks)}, not {config.backbone!r}")
    if config.head == "dcnn" and (config.augment_policy == "scanner" or config.intensity_norm != "none"):
        raise ValueError("the scanner augmentation and intensity_norm are implemented for the probe head only")
    if config.head == "probe" and not set(config.views) & set("LMS"):
        raise ValueError(f"probe views {config.views!r} need a lesion view (L, M or S)")
    if config.intensity_norm not in ("none", "liver_z"):
        raise ValueError(f"intensity_norm must be 'none' or 'liver_z', not {config.intensity_norm!r}")
    if config.size_free_px < 8:
        raise ValueError(f"size_free_px must be at least 8, not {config.size_free_px}")
    if config.head == "dcnn" and config.backbone not in ("efficientnet_lite0", "resnet18"):
        raise ValueError(f"the dcnn head's backbone must be efficientnet_lite0 or resnet18, not {config.backbone!r}")
    if config.augment_policy not in AUGMENT_POLICIES:
        raise ValueError(f"augment_policy must be one of {AUGMENT_POLICIES}, not {config.augment_policy!r}")
    if config.tta_copies > config.augment_copies:
        raise ValueError(f"tta_copies ({config.tta_copies}) cannot exceed augment_copies ({config.augment_copies})")
    if config.folds < MIN_FOLDS:
        raise ValueError(f"folds must be at least {MIN_FOLDS} (test, inner validation, training), not {config.folds}")
    if config.seg_size % 32:
        raise ValueError(f"seg_size must be a multiple of 32, not {config.seg_size}")
    if not 0 < config.crop_side_frac <= 1:
        raise ValueError(f"crop_side_frac must be in (0, 1], not {config.crop_side_frac}")
    return config
