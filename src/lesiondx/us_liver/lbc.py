"""Model_LBC: logistic fusion of the lesion-level DCNN score with clinical and ultrasonic factors.

Factors are manifest columns (clinical variables when the dataset has them) plus the mask-derived
ultrasonic factors of :func:`lesiondx.us_liver.rois.ultrasonic_factors`. Selection: univariate
screen (p < ``p_threshold``), then the multivariate model (``lesiondx.stats.fusion_model``);
nomogram via ``lesiondx.stats.plot_nomogram``. Image size and scanner cues are never candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lesiondx.stats import FusionResult, fusion_model, plot_nomogram

# columns that are identifiers, paths, targets, folds or scanner/size shortcuts — never factors
EXCLUDED = {"image_id", "patient_id", "label", "image", "lesion_mask", "liver_mask", "infection_mask", "sector_mask",
            "slice_index", "y", "fold", "width", "height", "lesion_area", "score", "dcnn_logit"}
MASK_FACTORS = ("lesion_size_rel", "lesion_depth_rel")


def candidate_factors(table: pd.DataFrame, extra_excluded: Sequence[str] = ()) -> list[str]:
    """Manifest columns usable as factors: not excluded, not all missing, ≥ 2 distinct values."""
    skip = EXCLUDED | set(extra_excluded)
    out = []
    for col in table.columns:
        if col in skip or col.startswith("score") or table[col].isna().any():
            continue
        if table[col].nunique() >= 2:
            out.append(col)
    return out


def with_logit(table: pd.DataFrame, score_col: str) -> pd.DataFrame:
    """Adds ``dcnn_logit`` = logit of the (clipped) lesion-level probability."""
    p = np.clip(table[score_col].to_numpy(float), 1e-4, 1 - 1e-4)
    return table.assign(dcnn_logit=np.log(p / (1 - p)))


def fit_lbc(table: pd.DataFrame, score_col: str, factors: Sequence[str], *, outcome: str = "y",
            p_threshold: float = 0.1) -> FusionResult:
    """Univariate screen then multivariate logistic model of ``outcome`` on the DCNN logit + factors."""
    return fusion_model(with_logit(table, score_col), outcome, "dcnn_logit", list(factors), p_threshold=p_threshold)


def lbc_cross_validated(table: pd.DataFrame, folds: np.ndarray, score_col: str, factors: Sequence[str], *,
                        outcome: str = "y", p_threshold: float = 0.1) -> np.ndarray:
    """Out-of-fold fused probabilities: selection and fit repeated on the other folds each time."""
    data = with_logit(table, score_col)
    out = np.full(len(table), np.nan)
    for f in np.unique(folds):
        fit = fusion_model(data[folds != f], outcome, "dcnn_logit", list(factors), p_threshold=p_threshold)
        out[folds == f] = fit.model.predict(data[folds == f])
    return out


def save_nomogram(result: FusionResult, path: Path, title: str) -> Path:
    """Nomogram PNG of the fitted fusion model."""
    fig = plot_nomogram(result.model, title=title)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
