"""ROI proposal: one U-Net (EfficientNet-Lite0 encoder) with three outputs — lesion, liver, scan
sector — trained on the dataset's outlines, so ``predict`` needs no hand-drawn mask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from lesiondx.io.windows import resize
from lesiondx.models import bce_dice_loss, build_segmenter, dice_score
from lesiondx.progress import track
from lesiondx.models.training import optimise_step

from .rois import UsFrame, read_frame
from .views import CHANNELS, Proposal, proposal_from_probs, seg_input_array  # noqa: F401 (re-exported)


def new_segmenter(pretrained: bool = True) -> torch.nn.Module:
    """The 3-output U-Net on 1-channel input."""
    return build_segmenter("unet", "efficientnet_lite0", in_channels=1, classes=len(CHANNELS), pretrained=pretrained)


def seg_input(grey: np.ndarray, size: int) -> torch.Tensor:
    """Frame (0..255) → ``(1, 1, size, size)`` tensor in [-1, 1] (Lite0 normalisation)."""
    return torch.from_numpy(seg_input_array(grey, size))


def seg_target(frame: UsFrame, size: int) -> torch.Tensor:
    """``(3, size, size)`` float target; absent masks are zeros."""
    planes = []
    for mask in (frame.lesion, frame.liver, frame.sector):
        plane = np.zeros((size, size), np.float32) if mask is None else resize(mask.astype(np.float32), (size, size), order=0)
        planes.append(plane)
    return torch.from_numpy(np.stack(planes).astype(np.float32))


def load_seg_arrays(frame_rows: pd.DataFrame, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs ``(N,1,S,S)`` and targets ``(N,3,S,S)`` for every row of a manifest frame."""
    xs, ys = [], []
    for row in track(list(frame_rows.itertuples(index=False)), "segmenter inputs"):
        frame = read_frame(row.image, row.lesion_mask, row.liver_mask, row.sector_mask)
        xs.append(seg_input(frame.grey, size))
        ys.append(seg_target(frame, size))
    return torch.cat(xs), torch.stack(ys)


def per_channel_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over channels of BCE + soft Dice, so the small lesion channel is not swamped by the
    large liver and sector channels."""
    return torch.stack([bce_dice_loss(logits[:, c], target[:, c]) for c in range(logits.shape[1])]).mean()


def random_affine(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, *, scale: float = 0.15,
                  degrees: float = 10.0, shift: float = 0.08) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random zoom (± ``scale``), rotation (± ``degrees``) and shift (± ``shift`` of the side)
    applied to inputs ``(B,1,S,S)`` in [-1, 1] (bilinear, black outside) and targets ``(B,C,S,S)`` (nearest)."""
    n = len(x)
    zoom = 1 + scale * (2 * torch.rand(n, generator=gen) - 1)
    angle = torch.deg2rad(degrees * (2 * torch.rand(n, generator=gen) - 1))
    move = shift * 2 * (2 * torch.rand(n, 2, generator=gen) - 1)  # grid units span 2 per side
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, move[:, 0]], 1), torch.stack([sin, cos, move[:, 1]], 1)], 1)
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    xs = torch.nn.functional.grid_sample(x + 1, grid, mode="bilinear", align_corners=False) - 1
    ys = torch.nn.functional.grid_sample(y, grid, mode="nearest", align_corners=False)
    return xs, ys


def train_segmenter(
    x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch_size: int, lr: float, seed: int,
    log: list[dict] | None = None, init: torch.nn.Module | None = None, affine: bool = True,
) -> torch.nn.Module:
    """Train the U-Net (or continue training ``init``) with per-channel BCE + Dice; random flips,
    intensity changes and (``affine``) a random zoom / rotation / shift of input and targets together."""
    torch.manual_seed(seed)
    model = init if init is not None else new_segmenter()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(1, epochs * ((len(x) + batch_size - 1) // batch_size)))
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        total = 0.0
        for start in track(range(0, len(x), batch_size), f"segmenter epoch {epoch + 1}/{epochs}"):
            idx = order[start : start + batch_size]
            xb, yb = x[idx].clone(), y[idx].clone()
            flip = torch.rand(len(idx), generator=gen) < 0.5
            xb[flip], yb[flip] = xb[flip].flip(-1), yb[flip].flip(-1)
            if affine:
                xb, yb = random_affine(xb, yb, gen)
            xb = xb * (0.85 + 0.3 * torch.rand(len(idx), 1, 1, 1, generator=gen))
            loss = per_channel_loss(model(xb), yb)
            total += optimise_step(loss, optimiser, schedule) * len(idx)
        if log is not None:
            log.append({"epoch": epoch + 1, "seg_loss": total / len(x)})
    return model.eval()


@torch.no_grad()
def segmenter_dice(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean hard Dice per channel (images with an empty target in that channel skipped)."""
    model.eval()
    pred = torch.cat([model(x[i : i + 16]) for i in range(0, len(x), 16)]) > 0
    out = {}
    for c, name in enumerate(CHANNELS):
        scores = [dice_score(pred[i, c], y[i, c] > 0.5) for i in range(len(x)) if y[i, c].any()]
        out[name] = float(np.mean(scores)) if scores else float("nan")
    return out


@torch.no_grad()
def propose(model: torch.nn.Module, grey: np.ndarray, size: int) -> Proposal:
    """Lesion/liver/sector masks on the full frame from the torch segmenter (see ``proposal_from_probs``)."""
    model.eval()
    prob = torch.sigmoid(model(seg_input(grey, size)))[0].numpy()
    return proposal_from_probs(prob, grey.shape)
