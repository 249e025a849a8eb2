"""The shipped DCNN-US bundle on either engine: load (ONNX Runtime by default, torch for research and Grad-CAM),
ROI proposal or user ROI, ensemble score, heat map. torch-free: the torch engine lives in ``torch_bundle``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from lesiondx.data import Box
from lesiondx.io import ImageReadError
from lesiondx.io.raster import RASTER_SUFFIXES, read_raster_array
from lesiondx.runtime import REPO_MODELS, cam_image, choose_engine, shipped_model_dir  # noqa: F401 (cam_image re-exported)

from .config import UsLiverConfig
from .rois import UsFrame, fixed_side, read_frame, sector_box  # noqa: F401 (fixed_side, sector_box re-exported)
from .user_roi import user_roi_problem
from .views import Proposal

CHECKPOINT = "us_liver.pt"
SEGMENTER_ONNX = "segmenter.onnx"
CLASSIFIER_ONNX = "classifier.onnx"
DEFAULT_MODEL = REPO_MODELS / "us-liver"  # the repository's shipped model; "default" resolves via shipped_model_dir


class Bundle(Protocol):
    """What inference needs from a loaded model, on either engine (``OnnxBundle`` or ``TorchBundle``)."""

    config: UsLiverConfig
    threshold: float
    version: str
    meta: dict
    heatmap_method: str  # "CAM" (ONNX Runtime) or "Grad-CAM" (torch)

    def propose(self, grey: np.ndarray) -> Proposal: ...

    def score(self, frame: UsFrame, *, cam: bool, roi_source: str) -> "Scored": ...


@dataclass(frozen=True)
class BundleInfo:
    """What both engines' bundles carry besides their networks."""

    config: UsLiverConfig
    threshold: float
    version: str
    meta: dict
    heatmap_method: ClassVar[str] = "heat map"  # written on the overlay


def resolve_model(model: str | Path) -> Path:
    """``"default"`` → the shipped ``models/us-liver``; a run dir or a checkpoint file otherwise."""
    path = shipped_model_dir("us-liver") if str(model) == "default" else Path(model)
    path = path / CHECKPOINT if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no us-liver model checkpoint (train one with `lesiondx train --task us-liver`)")
    return path


def config_from_meta(meta: dict) -> UsLiverConfig:
    """The training config stored with a bundle (checkpoints written before the probe head have no "head" key:
    they are DcnnUs heads)."""
    return UsLiverConfig(**({"head": "dcnn"} | {k: tuple(v) if isinstance(v, list) else v for k, v in meta["config"].items()}))


def version_of(meta: dict, digest: str) -> str:
    """Model version string from the bundle's metadata and the first hex digits of its checkpoint's sha256."""
    return f"us-liver-dcnn-us-{meta.get('date', 'unknown')}-{digest[:10]}"


def load_bundle(model: str | Path, engine: str | None = None) -> Bundle:
    """Load a run dir / checkpoint / ``"default"`` on ONNX Runtime (``segmenter.onnx`` + ``classifier.onnx``
    beside the checkpoint) or torch, as :func:`lesiondx.runtime.choose_engine` decides."""
    path = resolve_model(model)
    exports = [(path.parent / SEGMENTER_ONNX, path), (path.parent / CLASSIFIER_ONNX, path)]
    if choose_engine(exports, engine) == "onnx":
        from .onnx_bundle import load_onnx_bundle

        return load_onnx_bundle(path.parent / SEGMENTER_ONNX, path.parent / CLASSIFIER_ONNX)
    from .torch_bundle import load_torch_bundle

    return load_torch_bundle(path)


def parse_roi(roi: object, shape: tuple[int, int]) -> np.ndarray | None:
    """User ROI → lesion mask: ``"x,y,w,h"`` (pixels), a 4-sequence, or a mask image path."""
    if roi is None or roi == "":
        return None
    if isinstance(roi, Path) or (isinstance(roi, str) and roi.lower().endswith(RASTER_SUFFIXES)):
        if not Path(str(roi)).is_file():
            raise ValueError(f"{roi}: ROI mask file not found (give the lesion box 'x,y,w,h' in pixels or a mask file)")
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
    if frame.lesion is None:
        raise ValueError("no lesion ROI")
    return bundle.score(frame, cam=cam, roi_source=roi_source)


def frame_for(bundle: Bundle, image: str | Path, roi: object = None) -> tuple[UsFrame, str, float]:
    """Read a frame and set its ROIs: the user's lesion ROI if given, else the proposal; liver and
    sector always from the segmenter. Returns ``(frame, roi source, segmenter's peak lesion probability)``."""
    frame = read_frame(image)
    proposal = bundle.propose(frame.grey)
    user = parse_roi(roi, frame.grey.shape)
    if user is not None and (problem := user_roi_problem(user, proposal.sector)):
        raise ValueError(f"roi {roi!r}: {problem}")
    lesion, source = (user, "user") if user is not None else (proposal.lesion if proposal.box else None, "proposed")
    if lesion is None:
        raise ImageReadError(image if isinstance(image, (str, Path)) else "frame",
                             "no lesion found by the segmenter; give roi='x,y,w,h'")
    liver = proposal.liver if proposal.liver.any() else None
    sector = proposal.sector if proposal.sector.any() else None
    return UsFrame(frame.grey, lesion, liver, sector), source, proposal.lesion_probability
