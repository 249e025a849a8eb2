"""Learned lesion detector: torchvision Faster R-CNN on an EfficientNet-Lite0 trunk (offline ImageNet
weights, stride 16), small input, trained from per-lesion boxes of tumour label maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from lesiondx.data import Box, boxes_from_mask
from lesiondx.models import efficientnet_lite0
from lesiondx.models.training import optimise_step

from .candidates import Detection


def build_detector(input_px: int = 320, pretrained: bool = True) -> nn.Module:
    """Faster R-CNN (2 classes: background, lesion) resizing every slice to ``input_px``²."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    lite = efficientnet_lite0(pretrained).module
    body = nn.Sequential(lite.conv_stem, lite.bn1, *lite.blocks[:5])
    body.out_channels = 112
    anchors = AnchorGenerator(sizes=((8, 16, 32, 64, 128),), aspect_ratios=((0.5, 1.0, 2.0),))
    return FasterRCNN(body, num_classes=2, rpn_anchor_generator=anchors,
                      box_roi_pool=MultiScaleRoIAlign(["0"], output_size=7, sampling_ratio=2),
                      min_size=input_px, max_size=input_px, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                      box_score_thresh=0.05, box_detections_per_img=20)


def lesion_boxes(label_map: np.ndarray, values: Sequence[int] | None = None, min_area: int = 4) -> list[Box]:
    """One box per connected part of each lesion value (``values``: the lesions to keep, default all)."""
    keep = [int(v) for v in np.unique(label_map) if v > 0 and (values is None or int(v) in values)]
    return [b for v in keep for b in boxes_from_mask(label_map == v, min_area=min_area)]


def _tensor(grey: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(grey, dtype=np.float32) / 255.0)[None].expand(3, -1, -1).contiguous()


def train_detector(slices: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]], *, input_px: int = 320,
                   steps: int = 600, batch_size: int = 4, lr: float = 0.01, seed: int = 0, log=None) -> nn.Module:
    """Train on abdomen-window grey slices (0..255) and their lesion boxes (empty lists = negative
    slices); positive slices are drawn twice as often as negatives. SGD with momentum, cosine decay."""
    if len(slices) != len(boxes) or not slices:
        raise ValueError(f"need one box list per slice, got {len(slices)} slices and {len(boxes)} box lists")
    if not any(len(b) for b in boxes):
        raise ValueError("no lesion box in the training slices: nothing to learn")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = build_detector(input_px)
    weights = np.array([2.0 if len(b) else 1.0 for b in boxes])
    weights /= weights.sum()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    for step in range(steps):
        idx = rng.choice(len(slices), size=batch_size, p=weights)
        images = [_tensor(slices[i]) for i in idx]
        targets = [{"boxes": torch.tensor([b.as_list() for b in boxes[i]], dtype=torch.float32).reshape(-1, 4),
                    "labels": torch.ones(len(boxes[i]), dtype=torch.int64)} for i in idx]
        loss = sum(model(images, targets).values())
        value = optimise_step(loss, opt, sched)
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"detector step {step + 1}/{steps} loss {value:.3f}")
    return model.eval()


@torch.no_grad()
def detect(model: nn.Module, grey: np.ndarray, *, batch_size: int = 8, min_score: float = 0.05) -> list[Detection]:
    """Boxes on every slice of ``grey`` ``(S, H, W)`` (0..255), as :class:`Detection` rows."""
    model.eval()
    out: list[Detection] = []
    for start in range(0, len(grey), batch_size):
        results = model([_tensor(sl) for sl in grey[start:start + batch_size]])
        for offset, res in enumerate(results):
            for box, score in zip(res["boxes"].numpy(), res["scores"].numpy()):
                if score >= min_score:
                    x1, y1, x2, y2 = (int(round(v)) for v in box)
                    if x2 > x1 and y2 > y1:
                        out.append(Detection(start + offset, Box(x1, y1, x2, y2), float(score)))
    return out
