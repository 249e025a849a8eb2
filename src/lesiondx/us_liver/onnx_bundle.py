"""The us-liver bundle on ONNX Runtime (the default engine; torch-free): segmenter and probe classifier
exported by ``torch_bundle.export_bundle``; heat map = the classifier's class activation map (no autograd)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from lesiondx.data import mask_box
from lesiondx.runtime import OnnxNet, cam_image

from .inference import BundleInfo, Scored, cam_to_frame, config_from_meta, crop_region
from .rois import UsFrame, fixed_side, sector_box
from .views import MAGNIFIED_SIDE, Proposal, proposal_from_probs, seg_input_array, view_crops


@dataclass(frozen=True)
class OnnxBundle(BundleInfo):
    """Segmenter and classifier sessions with the config, threshold and version stored in the exports."""

    segmenter: OnnxNet
    classifier: OnnxNet
    heatmap_method: ClassVar[str] = "CAM"

    def propose(self, grey: np.ndarray) -> Proposal:
        prob = self.segmenter.run(x=seg_input_array(grey, self.config.seg_size))["prob"][0]
        return proposal_from_probs(prob, grey.shape)

    def features(self, frame: UsFrame) -> np.ndarray:
        """``(1, D)`` pooled trunk features of the clean view crops (what the heads read), or a ``KeyError``
        when the export predates the ``features`` output (re-export with ``python -m lesiondx.export_onnx``)."""
        crops = view_crops(frame, self.config, np.random.default_rng(self.config.seed), 0)
        return self.classifier.run(**{v: crops[v] for v in self.config.views})["features"][:1]

    def score(self, frame: UsFrame, *, cam: bool, roi_source: str) -> Scored:
        """Clean + TTA crops of every view (the torch engine's fixed-seed draws); the heat map is the CAM of the
        clean crop of the fixed-scale lesion view (magnified when L is not used), for the predicted class."""
        cfg = self.config
        box = mask_box(frame.lesion)
        crops = view_crops(frame, cfg, np.random.default_rng(cfg.seed), cfg.tta_copies)
        out = self.classifier.run(**{v: crops[v] for v in cfg.views})
        prob = float(out["prob"].mean())
        heat = None
        if cam:
            view = self.classifier.meta.get("cam_view", "L")
            crop_cam = cam_image(out["cam"][0], cfg.crop_size, positive=prob >= self.threshold)
            side = fixed_side(sector_box(frame), cfg.crop_side_frac) if view == "L" else MAGNIFIED_SIDE
            heat = cam_to_frame(crop_cam, frame.grey.shape, crop_region(box, side, cfg.crop_margin))
        return Scored(prob, box, roi_source, heat, frame.grey)


def load_onnx_bundle(segmenter: Path, classifier: Path) -> OnnxBundle:
    """Sessions for the two exports; config, threshold and version come from the classifier's metadata."""
    seg, cls = OnnxNet.load(segmenter), OnnxNet.load(classifier)
    meta = cls.meta["checkpoint_meta"]
    return OnnxBundle(config=config_from_meta(meta), threshold=float(meta["threshold"]), version=str(cls.meta["version"]),
                      meta=meta, segmenter=seg, classifier=cls)
