"""A study through the whole chain: liver mask → lesion boxes → liver filter → LiLNet class
probabilities → patient result, plus overlay and CAM PNGs. Models come from a :class:`Bundle`."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lesiondx.config import config_to_dict
from lesiondx.data import Box, lesion_roi
from lesiondx.io import resize
from lesiondx.overlay import save_overlay
from lesiondx.runtime import OnnxNet, cam_image, choose_engine, set_torch_threads, shipped_model_dir

from .candidates import RULES_VERSION, Detection, detect_candidates
from .config import CtLiverConfig, load
from .label_tree import LabelTree
from .liver import hu_liver_mask, liver_flags
from .locations import METHOD, liver_frame
from .sizes import box_size_mm
from .study import Study

if TYPE_CHECKING:
    from torch import nn

    from .classifier import LiLNet



@dataclass(frozen=True)
class Bundle:
    """Everything ``predict`` needs; ``None`` parts fall back to the rule-based liver / candidate detector."""

    cfg: CtLiverConfig
    root: Path | None
    version: str
    classifier: LiLNet | OnnxNet | None = None  # OnnxNet: the classifier on ONNX Runtime
    level: str = "top"
    liver_net: nn.Module | None = None
    detector: nn.Module | None = None

    @property
    def tree(self) -> LabelTree:
        return LabelTree.from_mapping(self.cfg.label_tree)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.tree.classes(self.level)


def stored_side(cfg: CtLiverConfig) -> int:
    """Classifier crop side: ``crop_px`` plus 1/8 room for random-window augmentation."""
    return int(round(cfg.crop_px * 9 / 8))


def box_crop(grey: np.ndarray, box: Box, cfg: CtLiverConfig) -> np.ndarray:
    """The box expanded by ``box_margin`` to a ``classify_px``² crop (grey 0..255 → [0, 1])."""
    return np.clip(lesion_roi(np.asarray(grey, np.float32) / 255.0, box=box, margin=cfg.box_margin,
                              size=cfg.classify_px), 0, 1)


def classifier_input(crop: np.ndarray, cfg: CtLiverConfig) -> np.ndarray:
    side = stored_side(cfg)
    return resize(crop, (side, side)).astype(np.float32)


def save_classifier(path: Path, model: LiLNet, cfg: CtLiverConfig, level: str, meta: dict[str, Any]) -> Path:
    """``classifier.pt`` (fp16) and ``classifier.onnx`` beside it (see :func:`export_classifier`)."""
    from lesiondx.models import save_checkpoint

    written = save_checkpoint(path, {"classifier": model}, {**meta, "level": level, "config": config_to_dict(cfg),
                                                         "n_classes": model.n_classes})
    export_classifier(written)
    return written


def export_classifier(path: Path) -> Path:
    """Write ``classifier.onnx`` beside checkpoint ``path``: crops ``x`` ``(B, 1, S, S)`` in [0, 1] (S =
    ``stored_side``) → ``prob`` ``(B, N)`` and ``cam`` ``(B, N, h, w)`` (``classifier.LiLNetExport``)."""
    import torch

    from lesiondx.models.export import export_onnx

    from .classifier import LiLNetExport, export_geometry

    model, level, meta = _load_classifier(path)
    cfg = CtLiverConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["config"].items()})
    side = stored_side(cfg)
    geometry = export_geometry(model, side, cfg.crop_px)
    info = {"task": "ct-liver", "network": "LiLNet classifier", "checkpoint_meta": meta, "level": level,
            "input_px": side} | geometry
    return export_onnx(LiLNetExport(model, geometry["cells"]), [torch.zeros(2, 1, side, side)],
                       path.with_suffix(".onnx"), inputs=["x"], outputs=["prob", "cam"], meta=info, source=path)


def _load_classifier(path: Path) -> tuple[LiLNet, str, dict]:
    from lesiondx.models import load_checkpoint

    from .classifier import LiLNet, backbone_stages

    states, meta = load_checkpoint(path)
    cfg = CtLiverConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in meta["config"].items()})
    stages = backbone_stages(cfg.backbone, pretrained=False)
    model = LiLNet(stages, int(meta["n_classes"]), joint=cfg.lilnet, aux=cfg.lilnet, freeze_stem=cfg.backbone == "efficientnet_lite0")
    model.load_state_dict(states["classifier"])
    return model.eval(), meta["level"], meta


def _load_onnx_classifier(path: Path) -> tuple[OnnxNet, str, dict]:
    net = OnnxNet.load(path)
    return net, net.meta["level"], net.meta["checkpoint_meta"]


def load_bundle(model: str | Path = "default", engine: str | None = None) -> Bundle:
    """``"default"`` = the shipped ``models/ct-liver/`` (no IRCADb-derived weights); else a run dir.

    The classifier runs on ONNX Runtime (``classifier.onnx``) or torch as :func:`lesiondx.runtime.choose_engine`
    decides; a run dir's learned liver U-Net / detector (``liver_net.pt``, ``detector.pt``, never shipped) are
    torch-only, so their presence means the torch engine."""
    root = shipped_model_dir("ct-liver") if str(model) == "default" else Path(model)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: model folder not found (give a run dir from `lesiondx train --task ct-liver` or 'default')")
    cfg = load(root / "config.yaml") if (root / "config.yaml").is_file() else CtLiverConfig()
    classifier, level, version = None, "top", f"ct-liver:{root.name}"
    exports = [(root / f"{name}.onnx", root / f"{name}.pt") for name in ("classifier", "liver_net", "detector")
               if (root / f"{name}.pt").is_file()]
    onnx = bool(exports) and choose_engine(exports, engine) == "onnx"
    if (root / "classifier.pt").is_file():
        loader = _load_onnx_classifier if onnx else _load_classifier
        classifier, level, meta = loader(root / ("classifier.onnx" if onnx else "classifier.pt"))
        cfg = replace(cfg, label_tree=meta["config"]["label_tree"], crop_px=meta["config"]["crop_px"])
        version = f"ct-liver:{meta.get('version', root.name)}"
    liver_net = detector = None
    if (root / "liver_net.pt").is_file():
        from lesiondx.models import build_segmenter, load_checkpoint

        states, _ = load_checkpoint(root / "liver_net.pt")
        liver_net = build_segmenter("unet", "efficientnet_lite0", in_channels=1, pretrained=False)
        liver_net.load_state_dict(states["liver_net"])
        liver_net.eval()
    if (root / "detector.pt").is_file():
        from lesiondx.models import load_checkpoint

        from .detector import build_detector

        states, _ = load_checkpoint(root / "detector.pt")
        detector = build_detector(cfg.detector_px, pretrained=False)
        detector.load_state_dict(states["detector"])
        detector.eval()
    if detector is None:  # the rule-based detector's version is part of what a prediction depends on
        version = f"{version}+{RULES_VERSION}"
    return Bundle(cfg, root, version, classifier, level, liver_net, detector)


def liver_mask(study: Study, bundle: Bundle) -> tuple[np.ndarray, str]:
    """Liver mask and which method made it (``unet`` or ``hu-rule``)."""
    if bundle.liver_net is not None:
        from .liver_net import predict_liver

        return predict_liver(bundle.liver_net, study.grey, px=bundle.cfg.liver_px), "unet"
    cfg = bundle.cfg
    return hu_liver_mask(study.hu, study.spacing_mm, low=cfg.liver_hu_low, high=cfg.liver_hu_high), "hu-rule"


def searches_hyperdense(phase: str | None, cfg: CtLiverConfig) -> bool:
    """Whether hyperdense candidates are searched in a series of ``phase`` (``cfg.hyperdense``: ``all``,
    ``arterial`` = arterial series only, ``off``)."""
    return cfg.hyperdense == "all" or (cfg.hyperdense == "arterial" and phase == "arterial")


def rule_candidates(study: Study, liver: np.ndarray, cfg: CtLiverConfig) -> list[Detection]:
    """The rule-based lesion candidates of :mod:`.candidates` with the task's settings: hypodense, plus
    hyperdense where :func:`searches_hyperdense` (their chain ids follow the hypodense ones)."""
    kw = dict(min_contrast_hu=cfg.min_contrast_hu, min_mm=cfg.min_lesion_mm, max_mm=cfg.max_lesion_mm,
              search_margin_mm=cfg.search_margin_mm, min_slices=cfg.min_lesion_slices, slice_mm=study.slice_mm)
    found = detect_candidates(study.hu, liver, study.spacing_mm, polarity="hypo", **kw)
    if searches_hyperdense(study.phase, cfg):
        offset = 1 + max((d.component for d in found), default=-1)
        found += [replace(d, component=d.component + offset)
                  for d in detect_candidates(study.hu, liver, study.spacing_mm, polarity="hyper", **kw)]
    return found


def find_lesions(study: Study, liver: np.ndarray, bundle: Bundle) -> tuple[list[Detection], str]:
    """Detections with score ≥ ``score_threshold`` and the detector's name."""
    cfg = bundle.cfg
    if bundle.detector is not None:
        from .detector import detect

        found, name = detect(bundle.detector, study.grey), "faster-rcnn-lite0 (learned, run dir)"
    else:
        found = rule_candidates(study, liver, cfg)
        name = "hu-candidates (rule-based hypo- and hyperdense lesions, no learned weights)"
    return [d for d in found if d.score >= cfg.score_threshold], name


def uses_lilnet(bundle: Bundle) -> bool:
    """Whether lesion-type probabilities come from the LiLNet classifier (``classifier: lilnet`` and a
    ``classifier.pt``); the default (``features``) reports measured enhancement features instead."""
    return bundle.classifier is not None and bundle.cfg.classifier == "lilnet"


def classify(crops: list[np.ndarray], bundle: Bundle) -> np.ndarray:
    """``(n, n_classes)`` probabilities at the trained level (empty when no classifier)."""
    if bundle.classifier is None or not crops:
        return np.zeros((len(crops), len(bundle.classes)))
    return classifier_probabilities(bundle, np.stack([classifier_input(c, bundle.cfg) for c in crops]))


def classifier_probabilities(bundle: Bundle, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """``(n, n_classes)`` probabilities for classifier inputs ``(n, S, S)`` in [0, 1], on either engine."""
    if not isinstance(bundle.classifier, OnnxNet):
        from .classifier import predict_proba

        return predict_proba(bundle.classifier, x, bundle.cfg.crop_px)
    if len(x) == 0:
        return np.zeros((0, len(bundle.classes)))
    return np.concatenate([bundle.classifier.run(x=x[i : i + batch, None])["prob"] for i in range(0, len(x), batch)])


def class_map(bundle: Bundle, x: np.ndarray, class_index: int) -> np.ndarray:
    """Heat map in [0, 1] of ``class_index`` on one classifier input ``x`` ``(S, S)``: the exported class
    activation map on ONNX Runtime (placed on the central window the classifier reads), Grad-CAM on torch."""
    if not isinstance(bundle.classifier, OnnxNet):
        from .classifier import grad_cam

        return grad_cam(bundle.classifier, x, class_index)
    meta = bundle.classifier.meta
    cam = bundle.classifier.run(x=x[None, None])["cam"][0, class_index]
    heat = np.zeros(x.shape, np.float32)
    y0, px = int(meta["cam_y0"]), int(meta["cam_px"])
    heat[y0 : y0 + px, y0 : y0 + px] = cam_image(cam, px, positive=True)
    return heat


@dataclass(frozen=True)
class Parts:
    """A study's liver mask (and its method) and its detections (and the detector's name)."""

    liver: np.ndarray
    liver_method: str
    found: tuple[Detection, ...]
    detector: str


def detect_parts(study: Study, bundle: Bundle, liver: tuple[np.ndarray, str] | None = None,
                 max_lesions: int = 200) -> Parts:
    """Liver mask (computed unless given) and the best ``max_lesions`` detections of ``study``."""
    mask, method = liver if liver is not None else liver_mask(study, bundle)
    found, name = find_lesions(study, mask, bundle)
    return Parts(mask, method, tuple(sorted(found, key=lambda d: -d.score)[:max_lesions]), name)


def analyse(study: Study, bundle: Bundle, out: Path | None = None, *, max_overlays: int = 8,
            max_lesions: int = 200, parts: Parts | None = None) -> dict[str, Any]:
    """Run the chain on one study (``parts``: its liver and detections when already made); returns the
    JSON-able result (see ``task.predict``)."""
    set_torch_threads(bundle.cfg.threads)
    parts = parts if parts is not None else detect_parts(study, bundle, max_lesions=max_lesions)
    liver, liver_method, found, detector_name = parts.liver, parts.liver_method, list(parts.found), parts.detector
    flags = liver_flags(found, liver, bundle.cfg.inside_liver_fraction, bundle.cfg.edge_claw)
    lilnet = uses_lilnet(bundle)
    crops = [box_crop(study.grey[d.slice], d.box, bundle.cfg) for d in found] if lilnet else []
    probs = classify(crops, bundle)
    described = bundle.tree.describe(probs, bundle.level) if lilnet and crops else [{} for _ in found]
    frame = liver_frame(liver, study.orientation, study.spacing_mm)
    lesions = [{"slice": int(d.slice), "box": d.box.as_list(), "score": round(float(d.score), 4),
                "inside_liver": bool(f), "location": frame.box_location(d.box, bool(f)),
                "size_mm": box_size_mm(d.box, None if study.spacing_estimated else study.spacing_mm),
                "probabilities": {k: round(v, 4) for k, v in p.items()},
                "liver_fraction": round(float(d.inside_fraction), 3) if np.isfinite(d.inside_fraction) else None,
                "liver_envelope_fraction": round(float(d.envelope_fraction), 3) if np.isfinite(d.envelope_fraction) else None,
                "contrast_hu": round(float(d.contrast_hu), 1) if np.isfinite(d.contrast_hu) else None,
                "phase": study.phase} for d, f, p in zip(found, flags, described)]
    result: dict[str, Any] = {"study": study.study_id, "n_slices": study.n_slices, "detector": detector_name,
                              "liver_filter": liver_method, "lesions": lesions, "overlays": [], "cams": [],
                              "pixel_spacing_mm": study.spacing_mm, "spacing_estimated": study.spacing_estimated,
                              "location_basis": METHOD + ("; ImageOrientationPatient unknown: assumed a supine head-first "
                                                          "axial scan (image left = patient right)"
                                                          if frame.orientation.assumed else "")}
    if out is not None:
        result["overlays"], result["cams"] = _pictures(study, liver, found, flags, described, crops, probs, bundle,
                                                       Path(out), max_overlays)
    return result


def _pictures(study, liver, found, flags, described, crops, probs, bundle, out: Path, max_overlays: int):
    out.mkdir(parents=True, exist_ok=True)
    overlays, cams = [], []
    def rank(z: int) -> tuple[float, float]:  # slices with inside-liver boxes first, then by score
        inside = [d.score for d, f in zip(found, flags) if d.slice == z and f]
        return (-max(inside, default=0.0), -max(d.score for d in found if d.slice == z))

    slices = sorted({d.slice for d in found}, key=rank)[:max_overlays]
    for z in sorted(slices):
        idx = [i for i, d in enumerate(found) if d.slice == z]
        labels = [f"{found[i].score:.2f}{'' if flags[i] else ' OUT'}" for i in idx]
        path = save_overlay(out / f"{study.study_id}_slice{z:03d}.png", study.grey[z], heatmap=liver[z] * 0.15,
                            boxes=[found[i].box for i in idx], box_labels=labels,
                            caption=f"{study.study_id} slice {z}: boxes score >= {bundle.cfg.score_threshold}, OUT = outside liver, blue = liver")
        overlays.append(str(path))
    inside = [i for i, f in enumerate(flags) if f]
    if uses_lilnet(bundle) and inside:
        best = inside[0]
        top = int(np.argmax(probs[best]))
        heat = class_map(bundle, classifier_input(crops[best], bundle.cfg), top)
        heat = resize(heat, crops[best].shape)
        cls = bundle.classes[top]
        path = save_overlay(out / f"{study.study_id}_cam_slice{found[best].slice:03d}.png", crops[best] * 255, heatmap=heat,
                            caption=f"{'CAM' if isinstance(bundle.classifier, OnnxNet) else 'Grad-CAM'} {cls} p={probs[best][top]:.2f}")
        cams.append(str(path))
    return overlays, cams


def write_json(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    return path
