"""TEST DOUBLE: a deterministic stand-in for the trained models, for tests, demos and benchmarks.

:func:`stub_predictor` is **not** a diagnostic model: its probability is a hash of the pixel values
and its "heat map" a blob around the brightest region. Its results say ``model_version:
"test-double"`` and the UI labels them as such. Enable it in a running service with
``LESIONDX_PREDICTOR=lesiondx.service.testing:stub_predictor`` (never in production), or pass it to
:func:`lesiondx.service.api.create_app` as ``predictor=``.

``LESIONDX_STUB_DELAY_S`` makes each call sleep (to test killing the service mid-job).

:func:`misbehaving_predictor` (``lesiondx.service.testing:misbehaving_predictor``) is the same double that
misbehaves on purpose when an uploaded file's name says so: ``hang`` sleeps for an hour, ``hog`` allocates
memory until it is stopped (up to 4 GB), ``crash`` aborts its process; it writes the id of the process
running it to ``out/worker.pid`` (to test the worker processes' limits and isolation).
"""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from lesiondx.io import read_image, to_display

MODEL_VERSION = "test-double"
LABELS = {"us-liver": ("benign", "malignant"), "ct-covid": ("normal", "COVID-19"), "ct-liver": ("none", "liver lesion")}


def _score(pixels: np.ndarray) -> float:
    digest = hashlib.sha256(np.ascontiguousarray(pixels[::4, ::4]).astype(np.float32).tobytes()).digest()
    return round(int.from_bytes(digest[:4], "big") / 2**32, 4)


def _heat_overlay(grey: np.ndarray, out: Path) -> tuple[list[int], Path]:
    """Blend a red-yellow blob over ``grey`` around its brightest 32x32 block; draw its box."""
    h, w = grey.shape
    size = max(8, min(h, w) // 6)
    small = grey[: h - h % size, : w - w % size].reshape(h // size, size, w // size, size).mean(axis=(1, 3))
    r, c = np.unravel_index(int(np.argmax(small)), small.shape)
    cy, cx = r * size + size // 2, c * size + size // 2
    yy, xx = np.mgrid[0:h, 0:w]
    heat = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * size**2)))
    base = np.stack([grey] * 3, axis=-1).astype(np.float32)
    colour = np.stack([np.full_like(heat, 255.0), 255.0 * heat, np.zeros_like(heat)], axis=-1)
    alpha = (0.55 * heat)[..., None]
    blended = (base * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
    box = [int(max(0, cx - size)), int(max(0, cy - size)), int(min(w, cx + size)), int(min(h, cy + size))]
    image = Image.fromarray(blended)
    ImageDraw.Draw(image).rectangle(box, outline=(0, 255, 0), width=max(2, min(h, w) // 150))
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    return box, out


def stub_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **_: Any) -> dict[str, Any]:
    """TEST DOUBLE with the output shapes of the real tasks (see module docstring)."""
    delay = float(os.environ.get("LESIONDX_STUB_DELAY_S", "0") or 0)
    if delay > 0:
        time.sleep(delay)
    negative, positive = LABELS.get(task, ("negative", "positive"))
    if task == "us-liver":
        results = []
        for index, path in enumerate(inputs):
            image = read_image(path)
            grey = to_display(image)
            p = _score(image.pixels)
            box, overlay = _heat_overlay(grey, out / f"overlay_{index:03d}.png")
            results.append({"image": Path(path).name, "box": box, "probability": p, "threshold": 0.5,
                            "label": positive if p >= 0.5 else negative, "overlay": overlay,
                            "model_version": MODEL_VERSION})
        return {"results": results}
    volume = read_image(inputs[0])
    middle = volume.slice(volume.n_slices // 2)
    grey = to_display(middle, "lung" if task == "ct-covid" else "abdomen")
    p = _score(volume.pixels)
    box, overlay = _heat_overlay(grey, out / "overlay_middle.png")
    patient = {"probability": p, "threshold": 0.5, "label": positive if p >= 0.5 else negative,
               "n_slices": volume.n_slices, "model_version": MODEL_VERSION}
    if task == "ct-covid":
        slices = [{"index": i, "probability": _score(volume.pixels[i])} for i in range(volume.n_slices)]
        return {"patient": patient, "slices": slices, "overlays": [overlay], "box": box}
    return {"patient": patient, "lesions": [{"box": box, "slice": volume.n_slices // 2, "probability": p}],
            "overlays": [overlay]}


def series_stub_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **options: Any) -> dict[str, Any]:
    """TEST DOUBLE for the stack viewer: :func:`stub_predictor` plus, for a CT series, a box and a heat map
    on every 5th slice (ct-covid's per-slice shape), reporting one progress step per slice and sleeping
    ``LESIONDX_STUB_SLICE_DELAY_S`` seconds per slice (a slow job whose progress can be watched)."""
    from lesiondx.progress import track

    result = stub_predictor(task, inputs, out, model, **options)
    if task == "us-liver":
        return result
    volume = read_image(inputs[0])
    pixels = volume.pixels if volume.is_volume else volume.pixels[None]
    delay = float(os.environ.get("LESIONDX_STUB_SLICE_DELAY_S", "0") or 0)
    slices, heatmaps = [], {}
    for i in track(range(len(pixels)), "analysing slices"):
        time.sleep(delay)
        entry: dict[str, Any] = {"slice": i, "probability": _score(pixels[i]), "boxes": []}
        if i % 5 == 2:
            h, w = pixels[i].shape
            cy, cx, r = h // 2 + (i % 3 - 1) * h // 6, w // 3 + (i % 4) * w // 10, max(4, min(h, w) // 12)
            entry["boxes"].append({"box": [cx - r, cy - r, cx + r, cy + r], "quadrant": "right upper" if cx < w // 2
                                   else "left upper", "score": round(0.5 + 0.4 * entry["probability"], 4)})
            yy, xx = np.mgrid[0:h, 0:w]
            heatmaps[i] = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * r**2))).astype(np.float32)
        slices.append(entry)
    return {**result, "slices": slices, "heatmaps": heatmaps}


def synthetic_ct_series(source: Path, dest: Path, n: int = 133) -> list[Path]:
    """SYNTHETIC: ``n`` DICOM slices made by cycling the real slices in ``source`` with new UIDs,
    InstanceNumber 1..n and positions 2.5 mm apart (superior first), written in shuffled file order.
    For tests of long series only (the images repeat; they are not a real patient's series)."""
    import pydicom
    from pydicom.uid import generate_uid

    files = sorted(Path(source).glob("*.dcm"))
    series, study = generate_uid(), generate_uid()
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        ds = pydicom.dcmread(files[i % len(files)])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series, study
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [*list(ds.ImagePositionPatient)[:2], -100.0 - 2.5 * i]
        ds.SeriesDescription = "SYNTHETIC test series"
        path = dest / f"s{(i * 37) % n:04d}.dcm"  # file names do not follow the slice order
        ds.save_as(path)
        out.append(path)
    return out


def misbehaving_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **options: Any
                          ) -> dict[str, Any]:
    """TEST DOUBLE that hangs, hogs memory or crashes on request (see module docstring), else :func:`stub_predictor`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "worker.pid").write_text(str(os.getpid()))
    names = " ".join(Path(p).name for p in inputs) + " " + " ".join(_misbehaviour_of(p) for p in inputs)
    if "hang" in names:
        time.sleep(3600)
    if "hog" in names:
        held = [np.ones(32 * 2**20, dtype=np.float64) for _ in range(16)]  # 256 MB at a time, resident; 4 GB
        time.sleep(3600 + len(held))
    if "crash" in names:
        os.kill(os.getpid(), signal.SIGABRT)
    return stub_predictor(task, inputs, out, model, **options)


MISBEHAVIOUR_GREY = {"hang": 10, "hog": 20, "crash": 30}  # uniform grey level that asks the double to misbehave


def misbehaving_image(kind: str, side: int = 64) -> bytes:
    """A uniform PNG that makes :func:`misbehaving_predictor` ``kind`` (``hang``, ``hog``, ``crash``) through the
    service, where the uploaded file name is replaced by a pseudonym before any predictor sees it."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((side, side), MISBEHAVIOUR_GREY[kind], np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _misbehaviour_of(path: Path) -> str:
    """The misbehaviour a :func:`misbehaving_image` input asks for ('' for any other image)."""
    try:
        from PIL import Image

        with Image.open(path) as image:
            if image.size[0] * image.size[1] > 4096 * 4096:
                return ""
            grey = np.asarray(image.convert("L"))
    except Exception:
        return ""
    if grey.size == 0 or grey.min() != grey.max():
        return ""
    return next((kind for kind, level in MISBEHAVIOUR_GREY.items() if level == int(grey.flat[0])), "")
