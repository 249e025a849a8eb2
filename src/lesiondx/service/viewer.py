"""Stack viewer back end: every slice of a study kept after the job, served raw for client-side windowing.

After ``materialise`` the worker calls :func:`store_slices`: the first volume input (a CT series folder,
PNG/JPG slice folder or US cine) is read with :func:`lesiondx.io.read_study` (inside the worker's
:func:`lesiondx.io.shared_decodes`: the decode the previews and the predictor use too) and saved in the
study's result folder as ``slices.npy`` (int16, ``(slices, rows, cols)``, HU for DICOM CT, grey levels
otherwise; 512 KB per 512×512 slice, memory-mapped when served) plus ``slices.json`` (InstanceNumber and
position of each slice in patient order, superior → inferior). The browser fetches
``/api/studies/{id}/slices/{n}.raw`` (little-endian int16) and windows it itself, so a window/level drag
costs no request; ``/slices/{n}.png?wc=&ww=`` renders one windowed slice server-side. Findings (boxes with
their slice) come from the study's stored results; per-slice heat maps a predictor returns under
``heatmaps`` are kept as 8-bit PNGs and served coloured (magma, alpha ∝ probability).

Progress: :class:`ProgressFile` receives :func:`lesiondx.progress.report` calls during a job and keeps the
latest stage/done/total in ``progress.json`` (a file, so a worker in another process can write it).
"""

from __future__ import annotations

import io
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from PIL import Image
from sqlalchemy import and_, func, or_, select

from lesiondx.io import ImageReadError, read_study
from lesiondx.io.windows import WINDOWS

from .auth import Actor
from .db import Study
from .storage import safe_name
from .websafety import scrub_paths

SLICES_NPY, SLICES_JSON, PROGRESS_JSON = "slices.npy", "slices.json", "progress.json"
HEAT_NAME = "heat_{:04d}.png"
FINAL = ("done", "failed")
router = APIRouter(prefix="/api/studies", tags=["viewer"])


@dataclass(frozen=True)
class StackInfo:
    """What the viewer needs to know about a stored stack (sizes in pixels, spacing in mm)."""

    n: int
    rows: int
    cols: int
    is_hu: bool
    modality: str
    instance_numbers: list[int]
    positions_mm: list[float] | None
    spacing_mm: list[float] | None
    patient: str | None


def _instance_numbers(sources: tuple[Path, ...], n: int) -> list[int]:
    """InstanceNumber of each slice (DICOM header), else 1..n in the stack's order."""
    numbers: list[int] = []
    if len(sources) == n and all(p.suffix.lower() == ".dcm" for p in sources):
        import pydicom

        for path in sources:
            try:
                value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["InstanceNumber"]).get("InstanceNumber")
                numbers.append(int(value))
            except (TypeError, ValueError, OSError, pydicom.errors.InvalidDicomError):
                return list(range(1, n + 1))
    return numbers if len(numbers) == n and len(set(numbers)) == n else list(range(1, n + 1))


def _patient(sources: tuple[Path, ...]) -> str | None:
    """The pseudonymous PatientID of a de-identified DICOM series (set by ingest), else ``None``."""
    if not sources or sources[0].suffix.lower() != ".dcm":
        return None
    import pydicom

    try:
        value = pydicom.dcmread(sources[0], stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID")
    except (OSError, pydicom.errors.InvalidDicomError):
        return None
    return str(value)[:64] if value else None


def store_slices(inputs: list[Path], results_dir: Path) -> StackInfo | None:
    """Save the first volume input's slices for the viewer; ``None`` when no input is a stack of slices.
    Outside :func:`lesiondx.io.shared_decodes` this is one more decode of the series (10 s for 133 JPEG-lossless
    slices on the loaded 2-core test machine); 0.5 MB of disk per 512² slice."""
    from lesiondx.progress import report

    for path in inputs:
        try:
            image = read_study(path)
        except (ImageReadError, ValueError, OSError):
            continue
        if not image.is_volume or image.n_slices < 2:
            continue
        report("reading slices", image.n_slices, image.n_slices)
        pixels = image.pixels
        if pixels.ndim == 4:  # colour cine: luminance
            pixels = pixels[..., :3].mean(axis=-1)
        stack = np.clip(np.rint(pixels), -32768, 32767).astype("<i2")
        np.save(results_dir / SLICES_NPY, stack)
        info = StackInfo(n=int(stack.shape[0]), rows=int(stack.shape[1]), cols=int(stack.shape[2]),
                         is_hu=bool(image.is_hu), modality=image.modality,
                         instance_numbers=_instance_numbers(image.sources, int(stack.shape[0])),
                         positions_mm=[round(float(p), 2) for p in image.positions] if image.positions else None,
                         spacing_mm=[round(float(s), 4) for s in image.spacing] if image.spacing else None,
                         patient=_patient(image.sources))
        (results_dir / SLICES_JSON).write_text(json.dumps(asdict(info)))
        report("analysing", 0, None)  # the predictor's own progress (if it reports any) follows
        return info
    return None


def store_heatmaps(output: Any, results_dir: Path) -> Any:
    """Take ``output["heatmaps"]`` (``{slice: probability map 0..1}`` or a list of ``{"slice", "map"}``;
    maps as arrays or ``.npy`` paths) out of a predictor's output and save each as ``heat_NNNN.png``."""
    if not isinstance(output, dict) or "heatmaps" not in output:
        return output
    output = dict(output)
    maps = output.pop("heatmaps")
    items = maps.items() if isinstance(maps, dict) else ((m.get("slice"), m.get("map")) for m in maps or [])
    for index, value in items:
        try:
            array = np.load(value) if isinstance(value, (str, Path)) else np.asarray(value, dtype=np.float32)
            grey = (np.clip(np.nan_to_num(array), 0, 1) * 255).astype(np.uint8)
            if grey.ndim == 2:
                Image.fromarray(grey).save(results_dir / HEAT_NAME.format(int(index)))
        except (TypeError, ValueError, OSError):
            continue
    return output


class ProgressFile:
    """A :func:`lesiondx.progress.reporting` sink: ``progress.json`` with stage, done, total and the
    stage's start time, rewritten atomically at most every 0.2 s (and always at a stage's last item)."""

    def __init__(self, results_dir: Path) -> None:
        self.path = results_dir / PROGRESS_JSON
        self.stage: str | None = None
        self.stage_started = 0.0
        self.last_write = 0.0

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        now = time.time()
        if stage != self.stage:
            self.stage, self.stage_started = stage, now
        elif now - self.last_write < 0.2 and done != total:
            return
        self.last_write = now
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"stage": stage, "done": done, "total": total, "stage_started": self.stage_started,
                                   "updated": now}))
        os.replace(tmp, self.path)


def read_progress(results_dir: Path) -> dict[str, Any] | None:
    """The last progress a running job wrote, with an ETA in seconds from the stage's pace."""
    try:
        data = json.loads((results_dir / PROGRESS_JSON).read_text())
    except (OSError, ValueError):
        return None
    done, total = data.get("done") or 0, data.get("total")
    eta = None
    if total and 0 < done < total:
        eta = round((data["updated"] - data["stage_started"]) * (total - done) / done, 1)
    return {"stage": data.get("stage"), "done": done, "total": total, "eta_s": eta}


def progress_of(core: Any, session: Any, study: Study) -> dict[str, Any]:
    """Stage, slices done / total, ETA, queue position and whether every state (job, PACS export) is final."""
    status = "queued" if study.status == "receiving" else study.status
    out: dict[str, Any] = {"stage": "receiving DICOM" if study.status == "receiving" else status, "done": None,
                           "total": None, "eta_s": None, "queue_position": None}
    if study.status == "queued":  # a study still receiving DICOM is not in the queue yet: no position
        ahead = session.scalar(select(func.count()).select_from(Study).where(  # the claim order (db.claim_next)
            Study.status == "queued", or_(Study.queue_seq < study.queue_seq,
                                          and_(Study.queue_seq == study.queue_seq, Study.created_at < study.created_at))))
        out["queue_position"] = int(ahead or 0) + 1
    elif status == "running":
        out.update({k: v for k, v in (read_progress(core.storage.results_dir(study.id)) or {}).items() if v is not None})
    from .pacs.export import export_detail  # lazy: the pacs package imports the worker, which imports this module

    export = export_detail(study)
    export_pending = (core.settings.pacs is not None and status == "done" and study.source == "dicom"
                      and (export is None or export.get("state") in ("pending", "sending")
                           or bool(export.get("next_try_at"))))
    out["export"] = export or ("pending" if export_pending else None)
    out["final"] = status in FINAL and not export_pending
    return out


def list_fields(core: Any, study: Study) -> dict[str, Any]:
    """Extra study-list fields: pseudonymous patient and number of slices (from the stored stack), the
    progress of a running job (``{"stage", "done", "total", "eta_s"}`` or ``None``), why a failed study failed
    (``failed_because``, server paths cut), the number of findings of a result without a label
    (``n_findings``: ct-liver's rule-table characterisation gives findings, not a label) and why a done study's
    result needs extra caution (``input_flags``, :func:`input_flags`)."""
    folder = core.storage.root / "results" / safe_name(study.id)
    info = stack_info(folder) if study.status == "done" else None
    running = read_progress(folder) if study.status == "running" else None
    first = (study.results or [{}])[0] if study.status == "done" else {}
    findings = (first.get("details") or {}).get("findings") if first.get("label") is None else None
    return {"patient": (info or {}).get("patient"), "n_slices": (info or {}).get("n"), "running": running,
            "failed_because": scrub_paths(study.failure or "") or None if study.status == "failed" else None,
            "n_findings": len(findings) if isinstance(findings, list) else None,
            "input_flags": input_flags(study.results or []) if study.status == "done" else []}


def input_flags(results: list[dict[str, Any]]) -> list[str]:
    """Why a result needs extra caution, in a few words each, as the study page's input check flags it: the input
    is outside what the model was validated on (gate), unlike its training data (OOD score over its limit), or
    the task added a caveat (e.g. ct-covid: a negative call on a series that covers only part of the lungs)."""
    flags: list[str] = []
    for entry in results:
        details = entry.get("details") or {}
        gate, ood = details.get("gate"), details.get("ood")
        if (details.get("out_of_scope_flag") is True or details.get("validated_on_input") is False
                or (isinstance(gate, dict) and gate.get("out_of_scope_flag") is True)):
            flags.append("outside what the model was validated on")
        if isinstance(ood, dict) and ood.get("out_of_distribution") is True:
            flags.append("unlike the training data")
        if details.get("caveat"):
            flags.append("caveat")
    return list(dict.fromkeys(flags))


def stack_info(results_dir: Path) -> dict[str, Any] | None:
    """The stored ``slices.json`` of a study, or ``None``."""
    try:
        return json.loads((results_dir / SLICES_JSON).read_text())
    except (OSError, ValueError):
        return None


def findings(results: list[dict[str, Any]], instance_numbers: list[int]) -> list[dict[str, Any]]:
    """Boxes with a slice from the stored result entries, each with its InstanceNumber and a short label
    (of a multiphase ct-liver result only the first phase's, the one stored as the stack)."""
    out = []
    for entry in results:
        studies = (entry.get("details") or {}).get("studies") or [{}]
        shown = studies[0].get("study") if isinstance(studies[0], dict) else None  # ct-liver phases: the stored one
        for box in entry.get("boxes") or []:
            if not isinstance(box, dict) or (shown is not None and box.get("study") not in (None, shown)):
                continue
            index = box.get("slice", box.get("slice_index"))
            coords = box.get("box")
            if not isinstance(index, int) or not 0 <= index < len(instance_numbers) or not _is_box(coords):
                continue
            score = next((box[k] for k in ("score", "probability") if isinstance(box.get(k), (int, float))), None)
            where = box.get("location") or box.get("quadrant")
            out.append({"slice": index, "instance": instance_numbers[index], "box": [float(c) for c in coords[:4]],
                        "score": score, "location": where, "size_mm": box.get("size_mm"),
                        "inside_liver": box.get("inside_liver"), "label": box.get("label")})
    out.sort(key=lambda f: (f["slice"], -(f["score"] or 0)))
    return out


def _is_box(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 4 and all(isinstance(c, (int, float)) for c in value[:4])


def _study(core: Any, study_id: str) -> tuple[Study, list[dict[str, Any]]]:
    with core.db.session() as s:
        study = s.get(Study, study_id[:32])
        if study is None:
            raise HTTPException(404, f"no study {study_id!r}")
        return study, study.results


def _stack(core: Any, study_id: str) -> np.ndarray:
    path = core.storage.results_dir(study_id[:32]) / SLICES_NPY
    if not path.is_file():
        raise HTTPException(404, f"study {study_id!r} has no stored slices (not a series, or not processed yet)")
    return np.load(path, mmap_mode="r")


def _slice(core: Any, study_id: str, n: int) -> np.ndarray:
    stack = _stack(core, study_id)
    if not 0 <= n < stack.shape[0]:
        raise HTTPException(404, f"slice {n} out of range 0..{stack.shape[0] - 1} (index in patient order)")
    return np.asarray(stack[n])


def default_window(task: str | None, info: dict[str, Any]) -> dict[str, float]:
    """The window the viewer opens with: lung for chest CT, abdomen for other HU stacks, full range otherwise."""
    if info.get("is_hu"):
        w = WINDOWS["lung" if task == "ct-covid" else "abdomen"]
        return {"center": w.center, "width": w.width}
    return {"center": 127.5, "width": 256.0}


def slices_listing(core: Any, study_id: str, *, with_ai: bool = True) -> dict[str, Any]:
    """The ``/slices`` answer for a study; ``with_ai=False`` leaves out findings and heat maps (reader study)."""
    study, results = _study(core, study_id)
    folder = core.storage.results_dir(study.id)
    info = stack_info(folder)
    if info is None:
        raise HTTPException(404, f"study {study_id!r} has no stored slices (not a series, or not processed yet)")
    heat = sorted(int(p.stem[5:]) for p in folder.glob("heat_*.png") if p.stem[5:].isdigit())
    presets = {k: {"center": w.center, "width": w.width} for k, w in WINDOWS.items()} if info["is_hu"] else {}
    return {**info, "task": study.task, "window": default_window(study.task, info), "presets": presets,
            "findings": findings(results, info["instance_numbers"]) if with_ai else [],
            "heatmaps": heat if with_ai else []}


def raw_slice(core: Any, study_id: str, n: int) -> Response:
    """Slice ``n`` as little-endian int16 bytes."""
    data = _slice(core, study_id, n)
    return Response(np.ascontiguousarray(data, dtype="<i2").tobytes(), media_type="application/octet-stream",
                    headers={"Cache-Control": "private, max-age=3600", "X-Rows": str(data.shape[0]),
                             "X-Cols": str(data.shape[1])})


def heat_map(core: Any, study_id: str, n: int) -> Response:
    """The magma RGBA PNG of slice ``n``'s heat map."""
    path = core.storage.result_file(study_id[:32], HEAT_NAME.format(n))
    if path is None:
        raise HTTPException(404, f"no heat map for slice {n}")
    prob = np.asarray(Image.open(path).convert("L"), dtype=np.float32) / 255.0
    buffer = io.BytesIO()
    Image.fromarray(heat_rgba(prob)).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{study_id}/slices")
def list_slices(study_id: str, request: Request, who: Actor) -> dict[str, Any]:
    """Every stored slice in patient order (index ``n`` = 0 superior) with its InstanceNumber, the window
    presets, the default window, the findings per slice and which slices have a heat map."""
    core = request.app.state.core
    listing = slices_listing(core, study_id)
    core.db.audit(who, "read_slices", study_id[:32], f"{listing['n']} slice(s)",
                  request.client.host if request.client else None)
    return listing


@router.get("/{study_id}/slices/{n}.raw", response_class=Response)
def slice_raw(study_id: str, n: int, request: Request, who: Actor) -> Response:
    """Slice ``n`` as little-endian int16 (rows × cols, row-major; HU for DICOM CT) for windowing in the browser."""
    return raw_slice(request.app.state.core, study_id, n)


@router.get("/{study_id}/slices/{n}.png", response_class=Response)
def slice_png(study_id: str, n: int, request: Request, who: Actor, wc: float = 40.0, ww: float = 400.0) -> Response:
    """Slice ``n`` windowed at centre ``wc`` / width ``ww`` (stored units: HU for CT) as an 8-bit PNG."""
    if not ww > 0:
        raise HTTPException(422, "ww (window width) must be positive")
    data = _slice(request.app.state.core, study_id, n).astype(np.float32)
    grey = np.clip((data - (wc - ww / 2)) / ww * 255.0, 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return Response(buffer.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.get("/{study_id}/heat/{n}.png", response_class=Response)
def heat_png(study_id: str, n: int, request: Request, who: Actor) -> Response:
    """Heat map of slice ``n`` as RGBA PNG: magma colours, opacity rising with probability (0 → transparent)."""
    return heat_map(request.app.state.core, study_id, n)


def heat_rgba(prob: np.ndarray, max_alpha: float = 0.6) -> np.ndarray:
    """Probabilities 0..1 → RGBA uint8 in matplotlib's perceptual *magma* map, alpha = ``max_alpha`` × p."""
    from matplotlib import colormaps

    rgba = colormaps["magma"](np.clip(prob, 0, 1))
    rgba[..., 3] = max_alpha * np.clip(prob, 0, 1)
    return (rgba * 255).astype(np.uint8)
