"""Model_LBC fusion on a SYNTHETIC table with clinical columns (AUL itself has none)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lesiondx.stats import auc_score
from lesiondx.us_liver.lbc import candidate_factors, fit_lbc, lbc_cross_validated, save_nomogram


def _synthetic_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """SYNTHETIC: AFP and age drive malignancy together with the DCNN score; 'noise' does not."""
    rng = np.random.default_rng(seed)
    afp = rng.normal(0, 1, n)
    age = rng.normal(60, 10, n)
    noise = rng.normal(0, 1, n)
    dcnn = rng.normal(0, 1, n)
    lin = 1.2 * dcnn + 1.5 * afp + 0.05 * (age - 60)
    y = (rng.random(n) < 1 / (1 + np.exp(-lin))).astype(int)
    return pd.DataFrame({"image_id": [f"syn{i}" for i in range(n)], "label": np.where(y, "malignant", "benign"),
                         "y": y, "score": 1 / (1 + np.exp(-dcnn)), "afp_z": afp, "age": age, "noise": noise,
                         "width": rng.choice([720, 1024], n), "sex": rng.choice(["F", "M"], n)})


def test_candidates_exclude_ids_targets_and_scanner_cues():
    cands = candidate_factors(_synthetic_table())
    assert set(cands) == {"afp_z", "age", "noise", "sex"}


def test_fusion_selects_informative_clinical_factor_and_beats_score_alone(tmp_path):
    table = _synthetic_table()
    fit = fit_lbc(table, "score", ["afp_z", "noise", "sex"])
    assert "afp_z" in fit.model.variables and "dcnn_logit" in fit.model.variables
    assert "noise" not in fit.model.variables or fit.screen.set_index("variable").loc["noise", "p_variable"] < 0.1
    folds = np.arange(len(table)) % 5
    fused = lbc_cross_validated(table, folds, "score", ["afp_z", "age", "noise", "sex"])
    assert not np.isnan(fused).any()
    assert auc_score(table["y"], fused) > auc_score(table["y"], table["score"]) + 0.05
    png = save_nomogram(fit, tmp_path / "nomogram.png", "synthetic")
    assert png.stat().st_size > 1000
