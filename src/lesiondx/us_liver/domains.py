"""Scanner groups from image geometry, and the leave-one-scanner-out (LOSO) evaluation of Model_LBM.

AUL gives no scanner id. A *scanner group* is read from what a device leaves in every frame: the image size
(``width × height`` px, the capture/export format) and where the scan sector sits in it (the horizontal
centre of the sector outline, or of the bright fan area when no outline is given, as a fraction of the
width: ``left`` < 0.4625 ≤ ``centre`` ≤ 0.5625 < ``right``; the cut-offs sit in the gaps of that
distribution on AUL, read without labels). File names, labels and counts are never used to form groups.

LOSO: every group with at least ``min_frames`` benign/malignant frames is left out in turn; all smaller
groups are left out together as one ``other`` fold (heads trained only on the large groups). A patient
whose frames fall in two groups is put in the group of most of its frames, so no patient and no group is
ever on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from lesiondx.data import grouped_kfold
from lesiondx.progress import track
from lesiondx.stats import auc_delong, delong_paired_test

from .config import UsLiverConfig
from .probe import ProbeCache, fit_probe, probe_scores
from .rois import read_frame, sector_box

LAYOUT_CUTS = (0.4625, 0.5625)  # sector centre x / width: left | centre | right
MIN_FRAMES = 30  # benign + malignant frames for a group to be its own LOSO fold and get its own AUC
OTHER = "other"


@dataclass(frozen=True)
class Geometry:
    """Frame geometry: size (px) and the sector's horizontal centre and width (fractions of the width)."""

    width: int
    height: int
    sector_cx: float
    sector_width: float


def frame_geometry(image: str | Path, sector_mask: object = None) -> Geometry:
    """Geometry of one frame; the sector from its outline mask when given, else the bright fan area."""
    with Image.open(str(image)) as im:
        width, height = im.size
    frame = read_frame(image, sector=sector_mask)
    box = sector_box(frame)
    return Geometry(width, height, box.center[0] / width, box.width / width)


def layout(sector_cx: float) -> str:
    """``left`` / ``centre`` / ``right``: where the scan sector sits in the frame."""
    low, high = LAYOUT_CUTS
    return "left" if sector_cx < low else "right" if sector_cx > high else "centre"


def scanner_group(geometry: Geometry) -> str:
    """``"{width}x{height}-{layout}"``, e.g. ``1024x768-centre``."""
    return f"{geometry.width}x{geometry.height}-{layout(geometry.sector_cx)}"


def scanner_groups(frame: pd.DataFrame) -> pd.Series:
    """Scanner group per row (columns ``image``, optional ``sector_mask``, ``patient_id``); every patient
    gets the group of most of its frames (ties: the first in sort order)."""
    sectors = frame["sector_mask"] if "sector_mask" in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    groups = pd.Series([scanner_group(frame_geometry(img, sec)) for img, sec in
                        track(list(zip(frame["image"], sectors)), "frame geometry")], index=frame.index)
    if "patient_id" in frame.columns:
        majority = groups.groupby(frame["patient_id"]).agg(lambda s: s.value_counts().sort_index().idxmax())
        groups = frame["patient_id"].map(majority).where(frame["patient_id"].notna(), groups)
    return groups


def loso_folds(groups: pd.Series, labels: pd.Series, min_frames: int = MIN_FRAMES) -> pd.Series:
    """LOSO fold name per row: the group itself when it has ``min_frames`` benign/malignant frames, else
    ``other`` (all small groups are left out together)."""
    lesion = labels.astype(str).isin(["benign", "malignant"])
    counts = groups[lesion].value_counts()
    large = set(counts[counts >= min_frames].index)
    return groups.where(groups.isin(large), OTHER)


def group_table(groups: pd.Series, labels: pd.Series) -> pd.DataFrame:
    """n benign / malignant / normal frames per scanner group, largest first."""
    table = pd.crosstab(groups.rename("group"), labels.astype(str).rename("label"))
    for col in ("benign", "malignant", "normal"):
        if col not in table:
            table[col] = 0
    table = table[["benign", "malignant", "normal"]]
    return table.assign(lesion=table["benign"] + table["malignant"]).sort_values("lesion", ascending=False)


def leave_one_scanner_out(cache: ProbeCache, fold_name: np.ndarray, cfg: UsLiverConfig) -> tuple[np.ndarray, dict]:
    """Model_LBM scores of every row from heads that never saw its LOSO fold. For each fold: C chosen by the
    AUC on one patient-grouped inner-validation fold of the training rows (``grouped_kfold``, seed
    ``cfg.seed``), then refit on all training rows (``cfg.probe_refit``). Returns scores and C per fold."""
    x = cache.features.numpy().astype(np.float64)
    y = cache.table["y"].to_numpy()
    scores = np.full(len(y), np.nan)
    chosen = {}
    for name in track(sorted(set(fold_name)), "leave-one-scanner-out"):
        test = fold_name == name
        train_rows = cache.table[~test]
        inner = grouped_kfold(train_rows, cfg.folds, seed=cfg.seed)
        train_idx = np.flatnonzero(~test)
        head = fit_probe(x, y, train_idx[inner != 0], train_idx[inner == 0], cfg)
        scores[test] = probe_scores(x[test], head, cfg.tta_copies)
        chosen[name] = head.c
    return scores, chosen


def size_scanner_loso(table: pd.DataFrame, fold_name: np.ndarray) -> np.ndarray:
    """The size-and-scanner baseline (logistic on width, height, log lesion area) with the same LOSO folds."""
    from .train import size_scanner_baseline

    codes = pd.factorize(pd.Series(fold_name))[0]
    return size_scanner_baseline(table, codes)


@dataclass(frozen=True)
class GroupResult:
    """One left-out group: counts, model and baseline AUC (DeLong 95 % CI), paired DeLong model − baseline,
    and lesion area alone inside the group (direction chosen on the group: optimistic, for context)."""

    group: str
    n_benign: int
    n_malignant: int
    auc: float
    auc_ci: tuple[float, float]
    baseline_auc: float
    baseline_ci: tuple[float, float]
    diff: float
    diff_ci: tuple[float, float]
    p: float
    area_auc_in_group: float

    @property
    def holds(self) -> bool:
        """AUC ≥ 0.80 and above the baseline (paired DeLong p < 0.05)."""
        return self.auc >= 0.80 and self.diff > 0 and self.p < 0.05


def group_result(name: str, y: np.ndarray, model: np.ndarray, baseline: np.ndarray, area: np.ndarray) -> GroupResult:
    """Figures of one group (needs both classes, at least 2 frames each)."""
    a, b, t = auc_delong(y, model), auc_delong(y, baseline), delong_paired_test(y, model, baseline)
    area_auc = auc_delong(y, area).auc
    return GroupResult(name, int((y == 0).sum()), int(y.sum()), a.auc, (a.ci_low, a.ci_high), b.auc, (b.ci_low, b.ci_high),
                       t.diff, (t.diff_ci_low, t.diff_ci_high), t.p, max(area_auc, 1 - area_auc))


def evaluable(y: np.ndarray) -> bool:
    """Both classes with at least 2 frames each (DeLong needs them)."""
    return int(y.sum()) >= 2 and int((1 - y).sum()) >= 2
