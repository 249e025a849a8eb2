"""Training DCNN-US heads on cached trunk features: BCE (+ batch-hard triplet, + background type),
class-balanced, early stopping on validation AUC, grouped cross-validation with inner validation."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from lesiondx.data import grouped_kfold
from lesiondx.progress import track
from lesiondx.stats import auc_score
from lesiondx.models.training import optimise_step

from .cache import FeatureCache
from .config import UsLiverConfig
from .model import DcnnUs, batch_hard_triplet


@dataclass(frozen=True)
class FoldResult:
    """One trained head: best state (by validation AUC), its epoch, validation scores, curve."""

    state: dict
    best_epoch: int
    val_auc: float
    val_index: np.ndarray
    val_scores: np.ndarray
    curve: pd.DataFrame


@dataclass(frozen=True)
class CvResult:
    """Out-of-fold scores (copy 0 = clean crops), fold per row, and the fold models."""

    oof: np.ndarray
    folds: np.ndarray
    results: tuple[FoldResult, ...]


def background_types(table: pd.DataFrame, column: str) -> tuple[np.ndarray | None, int]:
    """Integer background-type targets from a manifest column, if present (else ``None``)."""
    if column not in table.columns or table[column].isna().all():
        return None, 0
    codes, uniques = pd.factorize(table[column].astype(str))
    return codes.astype(np.int64), len(uniques)


@torch.no_grad()
def score(net: DcnnUs, cache: FeatureCache, index: np.ndarray, tta_copies: int = 0) -> np.ndarray:
    """P(malignant) for rows ``index``: mean over cached copies 0..``tta_copies`` (0 = clean crop)."""
    net.eval()
    out = []
    for s in range(0, len(index), 256):
        idx = torch.as_tensor(index[s : s + 256])
        probs = []
        for c in range(tta_copies + 1):
            bg = cache.background[idx, c].float() if net.background is not None else None
            probs.append(torch.sigmoid(net(cache.lesion[idx, c].float(), bg)))
        out.append(torch.stack(probs).mean(0))
    return torch.cat(out).numpy() if out else np.zeros(0)


def fit_head(cache: FeatureCache, tail: nn.Module, features: int, train_idx: np.ndarray, val_idx: np.ndarray,
             cfg: UsLiverConfig, *, seed: int, label: str = "fold") -> FoldResult:
    """Train one DcnnUs head; keep the epoch with the best validation AUC (patience ``cfg.patience``)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    y_all = cache.table["y"].to_numpy()
    bg_codes, n_bg = background_types(cache.table, cfg.background_column)
    net = DcnnUs(tail, features, branches=cfg.branches, dropout=cfg.dropout, n_background_types=n_bg)
    tails = [b for b in (net.lesion, net.background) if b is not None]
    tail_params = [p for b in tails for p in b.parameters()]
    for p in tail_params:
        p.requires_grad_(cfg.tail_lr > 0)
    head_params = [p for n, p in net.named_parameters() if not n.startswith(("lesion.", "background."))]
    groups = [{"params": head_params, "lr": cfg.lr}] + ([{"params": tail_params, "lr": cfg.tail_lr}] if cfg.tail_lr > 0 else [])
    optimiser = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
    y_train = y_all[train_idx]
    pos_weight = torch.tensor(max(1e-3, (y_train == 0).sum()) / max(1, (y_train == 1).sum()))
    copies = cache.lesion.shape[1] - 1
    best = (-1.0, 0, copy.deepcopy(net.state_dict()))
    rows, stale = [], 0
    for epoch in track(range(1, cfg.epochs + 1), f"{label}: epochs"):
        net.train()
        order = rng.permutation(train_idx)
        total = 0.0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            if len(idx) < 2:
                continue
            pick = torch.as_tensor(rng.integers(1, copies + 1, len(idx)) if copies else np.zeros(len(idx), int))
            ti = torch.as_tensor(idx)
            fl = cache.lesion[ti, pick].float()
            fb = cache.background[ti, pick].float() if net.background is not None else None
            z, zb = net.embed(fl, fb)
            logit = net.head(z)[:, 0]
            yb = torch.as_tensor(y_all[idx], dtype=torch.float32)
            loss = F.binary_cross_entropy_with_logits(logit, yb, pos_weight=pos_weight)
            if cfg.triplet_weight > 0:
                loss = loss + cfg.triplet_weight * batch_hard_triplet(z, yb.long(), cfg.triplet_margin)
            if net.background_head is not None and bg_codes is not None and cfg.background_weight > 0:
                loss = loss + cfg.background_weight * F.cross_entropy(net.background_head(zb), torch.as_tensor(bg_codes[idx]))
            total += optimise_step(loss, optimiser) * len(idx)
        val = score(net, cache, val_idx, cfg.tta_copies)
        y_val = y_all[val_idx]
        auc = float(auc_score(y_val, val)) if 0 < y_val.sum() < len(y_val) else float("nan")
        rows.append({"epoch": epoch, "train_loss": total / max(1, len(train_idx)), "val_auc": auc})
        if auc > best[0] or (np.isnan(auc) and epoch == 1):
            best, stale = (auc, epoch, copy.deepcopy(net.state_dict())), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    net.load_state_dict(best[2])
    return FoldResult(best[2], best[1], best[0], val_idx, score(net, cache, val_idx, cfg.tta_copies), pd.DataFrame(rows))


def cross_validate(cache: FeatureCache, tail: nn.Module, features: int, cfg: UsLiverConfig,
                   folds: np.ndarray | None = None) -> CvResult:
    """k-fold grouped CV: fold f is tested; fold f+1 (mod k) is the inner validation set for early
    stopping; the rest trains. Returns clean out-of-fold scores."""
    table = cache.table
    if folds is None:
        folds = grouped_kfold(table, cfg.folds, seed=cfg.seed)
    k = int(folds.max()) + 1
    oof = np.full(len(table), np.nan)
    results = []
    for f in range(k):
        test_idx = np.flatnonzero(folds == f)
        val_idx = np.flatnonzero(folds == (f + 1) % k)
        train_idx = np.flatnonzero((folds != f) & (folds != (f + 1) % k))
        res = fit_head(cache, tail, features, train_idx, val_idx, cfg, seed=cfg.seed + f, label=f"fold {f + 1}/{k}")
        net = DcnnUs(tail, features, branches=cfg.branches, dropout=cfg.dropout,
                     n_background_types=background_types(table, cfg.background_column)[1])
        net.load_state_dict(res.state)
        oof[test_idx] = score(net, cache, test_idx, cfg.tta_copies)
        results.append(res)
    return CvResult(oof, folds, tuple(results))


def size_scanner_baseline(table: pd.DataFrame, folds: np.ndarray) -> np.ndarray:
    """Out-of-fold P(malignant) of a logistic regression on image width, height and lesion pixel
    area (the shortcut a model must beat), with the same folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = table[["width", "height", "lesion_area"]].to_numpy(float)
    x[:, 2] = np.log1p(x[:, 2])
    y = table["y"].to_numpy()
    out = np.zeros(len(table))
    for f in np.unique(folds):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
        model.fit(x[folds != f], y[folds != f])
        out[folds == f] = model.predict_proba(x[folds == f])[:, 1]
    return out
