"""Model_LBM (multi-level probe): a frozen EfficientNet-Lite (0, 1 or 2) ImageNet trunk, global-average-pooled
features from several depths of three ROI views, and one logistic head per CV fold.

Views: ``L`` = lesion at a fixed scale (``crop_side_frac`` of the sector width), ``B`` = liver
background (liver minus the dilated lesion), ``M`` = the lesion box + margin (magnified to fill the
crop). Levels: outputs of the trunk's blocks 3–6 (``b3``…``b6``) and of the 1×1 conv head (``head``).
The head is standardise → linear (L2-penalised logistic regression, C picked on the inner
validation fold); the scaler is folded into the linear layer, so a member is one ``nn.Linear``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from lesiondx.models import build_backbone
from lesiondx.progress import track
from lesiondx.stats import auc_score

from .cache import describe, labelled_table, stored
from .config import UsLiverConfig
from .rois import read_frame
from .views import MAGNIFIED_SIDE, view_crops  # noqa: F401 (re-exported)

LEVELS = ("b3", "b4", "b5", "b6", "head")


class PooledTrunk(nn.Module):
    """A frozen multi-level trunk: ``stem`` (ends at level ``b3``) then ``blocks`` (levels ``b4``, ``b5``, ``b6``,
    ``head``); subclasses set them, ``mean``/``std`` buffers, ``levels``, ``cam_level`` and ``level_widths``."""

    def forward(self, grey: torch.Tensor, tap: nn.Module | None = None, *,
                maps: bool = False) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Pooled features ``(B, D)``; with ``maps`` also the feature map of every level in ``levels``."""
        h = self.stem((grey[:, None].expand(-1, 3, -1, -1) / 255.0 - self.mean) / self.std)
        pooled, level_maps = [], []
        for name, block in zip(LEVELS, (None, *self.blocks)):
            h = block(h) if block is not None else h
            if tap is not None and name == self.cam_level:
                h = tap(h.detach().requires_grad_(True))
            if name in self.levels:
                pooled.append(h.mean((2, 3)))
                level_maps.append(h)
        return (torch.cat(pooled, 1), level_maps) if maps else torch.cat(pooled, 1)


class PooledLite(PooledTrunk):
    """Frozen EfficientNet-Lite trunk (``backbone`` = ``efficientnet_lite0``/``1``/``2``): grey crops
    ``(B, H, W)`` 0..255 → concatenated pooled features ``(B, D)``.

    ``tap`` (optional module) is applied to the ``cam_level`` feature map: Grad-CAM hooks it."""

    def __init__(self, levels: tuple[str, ...], cam_level: str = "b5", backbone: str = "efficientnet_lite0") -> None:
        super().__init__()
        unknown = set(levels) - set(LEVELS)
        if unknown or not levels:
            raise ValueError(f"levels must be a non-empty subset of {LEVELS}, not {levels}")
        if not backbone.startswith("efficientnet_lite"):
            raise ValueError(f"the probe trunk is an EfficientNet-Lite, not {backbone!r}")
        backbone = build_backbone(backbone)
        m = backbone.module
        self.pretrained = backbone.pretrained
        self.levels, self.cam_level = tuple(levels), cam_level
        self.stem = nn.Sequential(m.conv_stem, m.bn1, *m.blocks[:4])
        self.blocks = nn.ModuleList([m.blocks[4], m.blocks[5], m.blocks[6], nn.Sequential(m.conv_head, m.bn2)])
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        widths = [m.blocks[i][-1].bn3.num_features for i in (3, 4, 5, 6)] + [m.num_features]
        # channels of each level in ``levels`` (their pooled features are concatenated in this order)
        self.level_widths = tuple(w for name, w in zip(LEVELS, widths) if name in self.levels)
        self.features = sum(self.level_widths)

def pooled_trunk(levels: tuple[str, ...], backbone: str = "efficientnet_lite0") -> nn.Module:
    """The frozen probe trunk: ``PooledLite`` for EfficientNet-Lite, ``PooledMobileNetV2`` for ``mobilenet_v2``."""
    if backbone == "mobilenet_v2":
        from .mobilenet import PooledMobileNetV2

        return PooledMobileNetV2(levels)
    return PooledLite(levels, backbone=backbone)


class ProbeHead(nn.Module):
    """One fold's logistic head: ``((x - mean) / scale) · coef + intercept`` → logit ``(B, 1)``.
    Standardising before the linear layer keeps the fp16 checkpoint accurate."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(features))
        self.register_buffer("scale", torch.ones(features))
        self.linear = nn.Linear(features, 1)

    @classmethod
    def from_fit(cls, fold: "ProbeFold") -> "ProbeHead":
        head = cls(len(fold.coef))
        with torch.no_grad():
            head.mean.copy_(torch.as_tensor(fold.mean))
            head.scale.copy_(torch.as_tensor(fold.scale))
            head.linear.weight.copy_(torch.as_tensor(fold.coef, dtype=torch.float32)[None])
            head.linear.bias.fill_(fold.intercept)
        return head.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.scale)


class ProbeEnsemble(nn.Module):
    """Trunk + fold heads. ``forward({view: (B, H, W)})`` → mean P(malignant) ``(B,)``."""

    def __init__(self, trunk: PooledLite, members: list[ProbeHead], views: str) -> None:
        super().__init__()
        self.trunk, self.members, self.views = trunk, nn.ModuleList(members), views

    def logit(self, features: torch.Tensor) -> torch.Tensor:
        """Mean member logit ``(B,)`` from concatenated view features ``(B, D·views)``."""
        return torch.stack([m(features)[:, 0] for m in self.members]).mean(0)

    def probability(self, features: torch.Tensor) -> torch.Tensor:
        """Mean member P(malignant) ``(B,)`` from concatenated view features ``(B, D·views)``."""
        return torch.stack([torch.sigmoid(m(features)[:, 0]) for m in self.members]).mean(0)

    def forward(self, crops: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.probability(torch.cat([self.trunk(crops[v]) for v in self.views], 1))


@torch.no_grad()
def frame_features(trunk: nn.Module, crops: dict[str, np.ndarray], views: str) -> torch.Tensor:
    """``(copies+1, D·views)`` float32 features of one frame's view crops."""
    return torch.cat([trunk(torch.from_numpy(np.ascontiguousarray(crops[v], dtype=np.float32))) for v in views], 1)


@dataclass(frozen=True)
class ProbeCache:
    """``features``: ``(N, copies+1, D·views)`` float32 (copy 0 clean); ``table`` as FeatureCache."""

    table: pd.DataFrame
    features: torch.Tensor


def probe_features(rows: pd.DataFrame, cfg: UsLiverConfig, trunk: nn.Module) -> ProbeCache:
    """Features of every row (ground-truth masks) with ``cfg.augment_copies`` augmented copies."""
    rng = np.random.default_rng(cfg.seed)
    feats, info = [], []
    for row in track(list(rows.itertuples(index=False)), f"probe features ×{cfg.augment_copies + 1}"):
        frame = read_frame(row.image, row.lesion_mask, row.liver_mask, row.sector_mask)
        feats.append(frame_features(trunk, view_crops(frame, cfg, rng, cfg.augment_copies), cfg.views))
        info.append(describe(frame))
    return ProbeCache(labelled_table(rows, info), torch.stack(feats))


def cached_probe_features(rows: pd.DataFrame, cfg: UsLiverConfig, trunk: nn.Module, path: Path | None) -> ProbeCache:
    """``probe_features`` stored at / reused from ``path`` (None: always computed, never stored)."""

    def build() -> dict[str, object]:
        cache = probe_features(rows, cfg, trunk)
        return {"table": cache.table, "features": cache.features}

    blob = stored(path, rows, build)  # the table's manifest columns are always today's ``rows`` (e.g. a fold column)
    table = rows.reset_index(drop=True).join(blob["table"].drop(columns=rows.columns, errors="ignore"))
    return ProbeCache(table, blob["features"])


def probe_cache_name(cfg: UsLiverConfig, digest: str) -> str:
    """File name of a probe feature cache: everything that changes the features is in it."""
    trunk = "" if cfg.backbone == "efficientnet_lite0" else f"{cfg.backbone}_"
    trunk += "" if cfg.augment_policy == "speckle" else f"{cfg.augment_policy}_"
    trunk += "" if cfg.intensity_norm == "none" else f"{cfg.intensity_norm}_"
    trunk += "" if "S" not in cfg.views else f"sf{cfg.size_free_px}_"
    return (f"probe_{trunk}{cfg.views}_{'-'.join(cfg.levels)}_{cfg.crop_size}_{cfg.crop_side_frac}_{cfg.crop_margin}"
            f"_{cfg.background_margin_px}_x{cfg.augment_copies}_s{cfg.seed}_{digest[:12]}.pt")


@dataclass(frozen=True)
class ProbeFold:
    """One fold head: scaler (mean, scale), coefficients on standardised features, intercept,
    chosen C, inner-validation AUC and scores."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    c: float
    val_auc: float
    val_index: np.ndarray
    val_scores: np.ndarray
    c_curve: tuple[tuple[float, float], ...] = ()  # (C, inner-validation AUC) for every C tried


def probe_scores(x: np.ndarray, head: ProbeFold, copies: int) -> np.ndarray:
    """P(malignant) = mean over copies 0..``copies`` of the head's sigmoid; ``x`` is ``(N, K, D)``."""
    z = ((x[:, : copies + 1] - head.mean) / head.scale) @ head.coef + head.intercept
    return (1 / (1 + np.exp(-z))).mean(1)


def _logistic(x: np.ndarray, y: np.ndarray, idx: np.ndarray, c: float) -> ProbeFold:
    """Class-balanced L2 logistic regression on the standardised features of every copy of rows ``idx``."""
    from sklearn.linear_model import LogisticRegression

    xt = x[idx].reshape(-1, x.shape[-1])
    mu, sd = xt.mean(0), xt.std(0) + 1e-3  # floor: dead channels, fp16 storage
    lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit((xt - mu) / sd, np.repeat(y[idx], x.shape[1]))
    return ProbeFold(mu, sd, lr.coef_[0], float(lr.intercept_[0]), float(c), float("nan"), np.zeros(0, int), np.zeros(0))


def fit_probe(x: np.ndarray, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, cfg: UsLiverConfig) -> ProbeFold:
    """C from ``cfg.probe_cs`` by inner-validation AUC (TTA scores) of heads fit on ``train_idx``;
    with ``cfg.probe_refit`` the returned head is refit on train + validation rows with that C
    (its ``val_scores`` stay those of the selection head, which never saw the validation rows)."""
    best: ProbeFold | None = None
    curve = []
    yv = y[val_idx]
    for c in cfg.probe_cs:
        fold = _logistic(x, y, train_idx, c)
        val = probe_scores(x[val_idx], fold, cfg.tta_copies)
        auc = float(auc_score(yv, val)) if 0 < yv.sum() < len(yv) else 0.5
        curve.append((float(c), auc))
        if best is None or auc > best.val_auc:
            best = replace(fold, val_auc=auc, val_index=val_idx, val_scores=val)
    assert best is not None
    if cfg.probe_refit:
        refit = _logistic(x, y, np.concatenate([train_idx, val_idx]), best.c)
        best = replace(refit, val_auc=best.val_auc, val_index=val_idx, val_scores=best.val_scores)
    return replace(best, c_curve=tuple(curve))


def cross_validate_probe(cache: ProbeCache, folds: np.ndarray, cfg: UsLiverConfig) -> tuple[np.ndarray, list[ProbeFold]]:
    """Fold f tested, fold f+1 (mod k) inner validation (C), the rest trains → OOF scores, heads."""
    x = cache.features.numpy().astype(np.float64)
    y = cache.table["y"].to_numpy()
    k = int(folds.max()) + 1
    oof = np.full(len(y), np.nan)
    heads = []
    for f in track(range(k), "probe folds"):
        val = (f + 1) % k
        test_idx, val_idx = np.flatnonzero(folds == f), np.flatnonzero(folds == val)
        head = fit_probe(x, y, np.flatnonzero((folds != f) & (folds != val)), val_idx, cfg)
        oof[test_idx] = probe_scores(x[test_idx], head, cfg.tta_copies)
        heads.append(head)
    return oof, heads


class ProbeCam(nn.Module):
    """Lesion-view crop ``(B, 1, H, W)`` → mean ensemble logit ``(B, 1)``, other views fixed;
    ``self.features`` sits on the trunk's ``cam_level`` map for Grad-CAM."""

    def __init__(self, ensemble: ProbeEnsemble, others: dict[str, torch.Tensor], cam_view: str) -> None:
        super().__init__()
        self.ensemble, self.others, self.cam_view = ensemble, others, cam_view
        self.features = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.ensemble.trunk(x[:, 0], tap=self.features) if v == self.cam_view else self.others[v]
                 for v in self.ensemble.views]
        return self.ensemble.logit(torch.cat(parts, 1))[:, None]


class ProbeExport(nn.Module):
    """The whole probe classifier as one graph for ONNX: view crops ``(N, S, S)`` 0..255 in ``views`` order →
    ``prob`` ``(N,)`` (mean over heads of P(malignant), per crop row), ``features`` ``(N, D)`` (the pooled trunk
    features the heads read, for the out-of-distribution score) and ``cam`` ``(N, h, w)``: the mean head
    logit decomposed over the positions of the ``cam_view`` crop (class activation map: each level's map
    weighted by the heads' standardised coefficients, coarse levels upsampled to the finest; its spatial
    mean is that view's share of the logit, up to a constant)."""

    def __init__(self, ensemble: ProbeEnsemble, cam_view: str) -> None:
        super().__init__()
        self.ensemble, self.cam_view = ensemble, cam_view
        trunk = ensemble.trunk
        weight = torch.stack([m.linear.weight[0] / m.scale for m in ensemble.members]).mean(0)
        k = ensemble.views.index(cam_view)
        self.register_buffer("cam_weight", weight[k * trunk.features : (k + 1) * trunk.features].clone())
        self.widths = trunk.level_widths

    def forward(self, *crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats, cam = [], None
        for view, crop in zip(self.ensemble.views, crops):
            pooled, level_maps = self.ensemble.trunk(crop, maps=True)
            feats.append(pooled)
            if view == self.cam_view:
                size = max((m.shape[-2:] for m in level_maps), key=lambda s: s[0])
                parts = []
                for w, fmap in zip(torch.split(self.cam_weight, list(self.widths)), level_maps):
                    part = torch.einsum("c,bchw->bhw", w, fmap)[:, None]
                    parts.append(nn.functional.interpolate(part, size=size, mode="bilinear", align_corners=False))
                cam = torch.stack(parts).sum(0)[:, 0]
        assert cam is not None
        features = torch.cat(feats, 1)
        return self.ensemble.probability(features), cam, features
