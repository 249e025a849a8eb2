"""LiLNet-style lesion classifier: joint labels from quadrant-masked feature maps (N → 5N),
aggregated inference, auxiliary heads on the last stages and self-knowledge distillation.

``LiLNet(joint=False, aux=False)`` is the plain backbone used as the ablation baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from lesiondx.models import build_backbone
from lesiondx.models.training import optimise_step

N_COPIES = 5  # original + four quadrant-masked copies


@dataclass(frozen=True)
class Stages:
    """A backbone cut into stages: ``modules[i]`` maps stage i−1's output to ``channels[i]`` channels."""

    modules: tuple[nn.Module, ...]
    channels: tuple[int, ...]
    mask_after: int  # index of the stage (stride 16 for Lite0, 8 for ResNet) whose output is quadrant-masked
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    pretrained: bool


def backbone_stages(name: str, pretrained: bool = True) -> Stages:
    """Stages of ``efficientnet_lite0`` (ImageNet weights, offline) or ``resnet18``/``resnet50`` (random
    init unless the user has local weights)."""
    bb = build_backbone(name, pretrained=pretrained)
    m = bb.module
    if name == "efficientnet_lite0":
        b = m.blocks
        mods = (nn.Sequential(m.conv_stem, m.bn1, b[0], b[1], b[2]), b[3], b[4], b[5], nn.Sequential(b[6], m.conv_head, m.bn2))
        chans = (b[2][-1].conv_pwl.out_channels, 80, 112, 192, m.num_features)
        return Stages(mods, chans, 1, bb.mean, bb.std, bb.pretrained)
    if name.startswith("resnet"):
        mods = (nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1), m.layer2, m.layer3, m.layer4)
        widths = [layer[-1].conv3.out_channels if hasattr(layer[-1], "conv3") else layer[-1].conv2.out_channels
                  for layer in (m.layer1, m.layer2, m.layer3, m.layer4)]
        return Stages(mods, tuple(widths), 0, bb.mean, bb.std, bb.pretrained)
    raise ValueError(f"unknown backbone {name!r}")


def quadrant_copies(h: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(5B, C, H, W)``: the input, then four copies each with one quadrant zeroed
    (upper-left, upper-right, lower-left, lower-right), copy-major."""
    _, _, rows, cols = h.shape
    r, c = rows // 2, cols // 2
    out = [h]
    for rs, cs in ((slice(0, r), slice(0, c)), (slice(0, r), slice(c, None)),
                   (slice(r, None), slice(0, c)), (slice(r, None), slice(c, None))):
        mask = torch.ones((1, 1, rows, cols), dtype=h.dtype, device=h.device)
        mask[..., rs, cs] = 0
        out.append(h * mask)
    return torch.cat(out, dim=0)


class LiLNet(nn.Module):
    """Backbone stages + classifiers. ``forward`` returns a list of logits, deepest first; in training
    with ``aux`` the two auxiliary heads (after the two stages before the last) follow. With ``joint``
    each head has ``5·n_classes`` outputs and the batch is 5× larger (copy-major).

    ``freeze_stem`` keeps the stages up to ``mask_after`` (ImageNet weights, eval-mode BN) fixed, so
    their features are computed once per crop: the CPU-cheap setting used for both arms of the ablation.
    """

    def __init__(self, stages: Stages, n_classes: int, *, joint: bool = True, aux: bool = True,
                 freeze_stem: bool = False) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages.modules)
        self.mask_after, self.n_classes, self.joint, self.aux = stages.mask_after, n_classes, joint, aux
        self.freeze_stem = freeze_stem
        self.n_embed = stages.mask_after + 1 if freeze_stem else 1  # stages run by ``embed``
        self.register_buffer("mean", torch.tensor(stages.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(stages.std).view(1, 3, 1, 1))
        n_out = n_classes * (N_COPIES if joint else 1)
        self.head = nn.Linear(stages.channels[-1], n_out)
        self.aux_heads = nn.ModuleList([nn.Linear(stages.channels[i], n_out) for i in (-3, -2)]) if aux else nn.ModuleList()
        if freeze_stem:
            self.stages[: self.n_embed].requires_grad_(False)

    def train(self, mode: bool = True) -> "LiLNet":
        super().train(mode)
        if self.freeze_stem:
            self.stages[: self.n_embed].eval()
        return self

    def embed(self, grey: torch.Tensor) -> torch.Tensor:
        """Features of the first ``n_embed`` stages for ``grey`` ``(B, 1|3, H, W)`` in [0, 1]."""
        h = (grey.expand(-1, 3, -1, -1) - self.mean) / self.std
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_stem):
            for stage in self.stages[: self.n_embed]:
                h = stage(h)
        return h

    def forward_features(self, h: torch.Tensor, *, copies: bool | None = None,
                         final_map: list[torch.Tensor] | None = None) -> list[torch.Tensor]:
        """Logits from :meth:`embed` features ``h`` (quadrant copies after stage ``mask_after``); the last
        stage's feature map is appended to ``final_map`` when given (class activation maps)."""
        copies = self.joint if copies is None else copies
        pooled: list[torch.Tensor] = []
        n = len(self.stages)
        for i in range(self.n_embed, n + 1):
            if copies and i - 1 == self.mask_after:
                h = quadrant_copies(h)
            if i == n:
                break
            h = self.stages[i](h)
            if self.training and self.aux and i in (n - 3, n - 2):
                pooled.append(h.mean(dim=(2, 3)))
        if final_map is not None:
            final_map.append(h)
        outs = [self.head(h.mean(dim=(2, 3)))]
        if self.training and self.aux:
            outs += [head(p) for head, p in zip(self.aux_heads, pooled)]
        return outs

    def forward(self, grey: torch.Tensor, *, copies: bool | None = None) -> list[torch.Tensor]:
        """``grey``: ``(B, 1, H, W)`` in [0, 1] (or ``(B, 3, H, W)``)."""
        return self.forward_features(self.embed(grey), copies=copies)

    def probabilities_from(self, h: torch.Tensor) -> torch.Tensor:
        """``(B, n_classes)`` probabilities from embedded features; joint models average the N-class
        softmax of each copy taken from its own block of the 5N outputs (aggregated inference)."""
        logits = self.forward_features(h)[0]
        return aggregate_joint(logits, self.n_classes) if self.joint else logits.softmax(dim=1)

    @torch.no_grad()
    def probabilities(self, grey: torch.Tensor) -> torch.Tensor:
        """``(B, n_classes)`` class probabilities for grey crops (see :meth:`probabilities_from`)."""
        return self.probabilities_from(self.embed(grey))


def aggregate_joint(logits: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``(5B, 5N)`` copy-major joint logits → ``(B, N)``: mean over copies t of softmax(logits_t[tN:(t+1)N])."""
    if logits.shape[0] % N_COPIES or logits.shape[1] != N_COPIES * n_classes:
        raise ValueError(f"joint logits must be (5B, 5N) with N={n_classes}, got {tuple(logits.shape)}")
    per_copy = logits.view(N_COPIES, -1, N_COPIES, n_classes)
    picked = torch.stack([per_copy[t, :, t] for t in range(N_COPIES)])  # (5, B, N)
    return picked.softmax(dim=-1).mean(dim=0)


def joint_allowed(allowed: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` allowed classes → ``(5B, 5N)``: copy t may only take the joint classes ``tN + c``."""
    b, n = allowed.shape
    out = torch.zeros((N_COPIES * b, N_COPIES * n), dtype=torch.bool, device=allowed.device)
    for t in range(N_COPIES):
        out[t * b:(t + 1) * b, t * n:(t + 1) * n] = allowed
    return out


def set_nll(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Mean −log P(label ∈ allowed set); equals cross-entropy when one class is allowed per row."""
    return (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~allowed, float("-inf")), 1)).mean()


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) on outputs softened by ``temperature`` (×T², teacher detached)."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, 1), F.softmax(teacher.detach() / t, 1), reduction="batchmean") * t * t


def lilnet_loss(outs: list[torch.Tensor], allowed: torch.Tensor, *, joint: bool, aux_weight: float,
                distill_weight: float, temperature: float) -> torch.Tensor:
    """Joint-label loss on the deepest head + weighted aux heads + self-distillation from the deepest."""
    target = joint_allowed(allowed) if joint else allowed
    loss = set_nll(outs[0], target)
    for aux in outs[1:]:
        loss = loss + aux_weight * set_nll(aux, target) + distill_weight * distillation(aux, outs[0], temperature)
    return loss


def _augment(feats: torch.Tensor, rng: np.random.Generator, cells: int) -> torch.Tensor:
    """Random horizontal flip and a random ``cells``-wide window of each ``(B, C, s, s)`` feature map."""
    size = feats.shape[-1]
    out = []
    for f in feats:
        y, x = rng.integers(0, size - cells + 1, size=2)
        f = f[:, y:y + cells, x:x + cells]
        out.append(f.flip(-1) if rng.random() < 0.5 else f)
    return torch.stack(out)


def center(feats: torch.Tensor, cells: int) -> torch.Tensor:
    """Central ``cells``-wide window of ``(B, C, s, s)``."""
    o = (feats.shape[-1] - cells) // 2
    return feats[..., o:o + cells, o:o + cells]


def _cells(model: LiLNet, side: int, out_px: int) -> tuple[int, int]:
    """Stage-0 feature size for a ``side``-pixel crop and the window matching ``out_px`` pixels."""
    with torch.no_grad():
        s = model.eval().embed(torch.zeros(1, 1, side, side)).shape[-1]
    return s, max(1, round(s * out_px / side))


def _embed_all(model: LiLNet, data: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.embed(data[i:i + batch_size]) for i in range(0, len(data), batch_size)])


def fit(model: LiLNet, crops: np.ndarray, allowed: np.ndarray, *, epochs: int, batch_size: int, lr: float,
        weight_decay: float, temperature: float, distill_weight: float, aux_weight: float, out_px: int,
        seed: int = 0, log=None) -> LiLNet:
    """Train on grey ``crops`` ``(n, S, S)`` in [0, 1] with boolean ``allowed`` ``(n, N)`` targets.

    Augmentation: random ``out_px``-sized windows (taken on the embedded feature grid) and horizontal
    flips; AdamW with a one-cycle schedule. Returns the model in eval mode.
    """
    if len(crops) != len(allowed) or len(crops) < 2:
        raise ValueError(f"need ≥ 2 crops with one target row each, got {len(crops)} and {len(allowed)}")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    data = torch.from_numpy(np.asarray(crops, dtype=np.float32))[:, None]
    target = torch.from_numpy(np.asarray(allowed, dtype=bool))
    _, cells = _cells(model, data.shape[-1], out_px)
    cached = _embed_all(model, data) if model.freeze_stem else None
    steps = epochs * max(1, int(np.ceil(len(data) / batch_size)))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(data))
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                sched.step()
                continue
            feats = cached[idx] if cached is not None else model.embed(data[idx])
            outs = model.forward_features(_augment(feats, rng, cells))
            loss = lilnet_loss(outs, target[idx], joint=model.joint, aux_weight=aux_weight,
                               distill_weight=distill_weight, temperature=temperature)
            total += optimise_step(loss, opt, sched) * len(idx)
        if log:
            log(f"epoch {epoch + 1}/{epochs} loss {total / len(data):.4f}")
    return model.eval()


@torch.no_grad()
def predict_proba(model: LiLNet, crops: np.ndarray, out_px: int, batch_size: int = 64) -> np.ndarray:
    """``(n, N)`` probabilities for grey crops ``(n, S, S)`` in [0, 1] (central ``out_px`` window)."""
    model.eval()
    data = torch.from_numpy(np.asarray(crops, dtype=np.float32))[:, None]
    if len(data) == 0:
        return np.zeros((0, model.n_classes))
    _, cells = _cells(model, data.shape[-1], out_px)
    return torch.cat([model.probabilities_from(center(model.embed(data[i:i + batch_size]), cells))
                      for i in range(0, len(data), batch_size)]).numpy()


class _Copy0(nn.Module):
    """The original (unmasked) copy's N-class logits: a plain classifier view for Grad-CAM."""

    def __init__(self, model: LiLNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, grey: torch.Tensor) -> torch.Tensor:
        return self.model(grey[:, :1], copies=False)[0][:, : self.model.n_classes]


def grad_cam(model: LiLNet, crop: np.ndarray, class_index: int) -> np.ndarray:
    """Grad-CAM (pytorch_grad_cam) of ``class_index`` on the last stage for one grey crop → same-size map in [0, 1]."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model.eval()
    x = torch.from_numpy(np.asarray(crop, dtype=np.float32))[None, None]
    with GradCAM(model=_Copy0(model), target_layers=[model.stages[-1]]) as cam:
        heat = cam(input_tensor=x.expand(-1, 3, -1, -1).contiguous(), targets=[ClassifierOutputTarget(class_index)])[0]
    return np.asarray(heat, dtype=np.float32)


class LiLNetExport(nn.Module):
    """The classifier's inference as one graph for ONNX: grey crops ``(B, 1, S, S)`` in [0, 1] → ``prob``
    ``(B, N)`` (aggregated inference on the central ``cells`` window of the embedded features, as
    :func:`predict_proba`) and ``cam`` ``(B, N, h, w)``: the class activation map of the unmasked copy, its
    last-stage map weighted by the head's weights of each class (its spatial mean is that class's logit
    minus the bias)."""

    def __init__(self, model: LiLNet, cells: int) -> None:
        super().__init__()
        self.model, self.cells = model.eval(), cells

    def forward(self, grey: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        maps: list[torch.Tensor] = []
        logits = m.forward_features(center(m.embed(grey), self.cells), final_map=maps)[0]
        prob = aggregate_joint(logits, m.n_classes) if m.joint else logits.softmax(dim=1)
        cam = torch.einsum("kc,bchw->bkhw", m.head.weight[: m.n_classes], maps[0][: grey.shape[0]])
        return prob, cam


def export_geometry(model: LiLNet, side: int, out_px: int) -> dict[str, int]:
    """Where the exported CAM lies in a ``side``-pixel crop: ``cam_y0`` (= x0) and ``cam_px``, the central
    window of the embedded features that :func:`predict_proba` classifies, and ``cells`` (its width in cells)."""
    size, cells = _cells(model, side, out_px)
    stride = side / size
    return {"cells": cells, "cam_y0": int(round((size - cells) // 2 * stride)), "cam_px": int(round(cells * stride))}
