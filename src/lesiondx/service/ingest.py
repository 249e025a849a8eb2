"""Triage of incoming files: DICOM / zip of DICOM / PNG / JPG in, de-identified accepted files out.

Every problem with a file becomes a :class:`FileError` naming the file and the reason (empty,
not an image, corrupt DICOM, unsupported modality, too large...); nothing here raises on bad
input. DICOM is de-identified with :func:`lesiondx.io.deidentify` *before* it is stored, and
its pixel data is decoded once to catch truncated or corrupt files early.
"""

from __future__ import annotations

import io
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset

from lesiondx.io import ImageReadError, deidentify, read_dataset
from lesiondx.tasks import TASK_MODULES

from .identity import OriginalIds, capture
from .storage import safe_name

SUPPORTED_MODALITIES = ("US", "CT")
RASTER_MAGIC = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg"}
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", "")
CHEST_WORDS = ("chest", "thorax", "thx", "lung", "pulmo", "covid")
ABDOMEN_WORDS = ("abdo", "abd", "liver", "hepat", "pelvis", "kidney", "upper gi")
LUNG_FRACTION_CHEST = 0.15  # share of the body outline below -400 HU above which a CT slice is chest


@dataclass
class FileError:
    """A file that was not accepted, and why (never raised, always reported)."""

    file: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "reason": self.reason}


@dataclass
class Accepted:
    """A file ready to store: bytes (de-identified DICOM or the original PNG/JPG) plus what routing needs."""

    name: str
    data: bytes
    kind: str  # "dicom" | "raster"
    suffix: str
    modality: str
    study_uid: str | None = None
    series_uid: str | None = None
    region: str | None = None  # "chest" | "abdomen" | None (unknown)
    original: OriginalIds | None = None  # DICOM: identifiers before de-identification (sealed in the identity map)


@dataclass
class Triage:
    """Result of triaging one upload request or one DICOM association."""

    accepted: list[Accepted] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)

    def extend(self, other: "Triage") -> None:
        self.accepted.extend(other.accepted)
        self.errors.extend(other.errors)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def triage_file(name: str, data: bytes, salt: str, *, max_file_bytes: int, depth: int = 0) -> Triage:
    """Classify one uploaded file (a zip is opened and its members triaged). Never raises."""
    try:
        return _triage(name or "unnamed", data, salt, max_file_bytes=max_file_bytes, depth=depth)
    except Exception as exc:  # a reader bug must not turn one bad file into a failed request
        return Triage(errors=[FileError(name or "unnamed", f"cannot read file ({type(exc).__name__}: {exc})"[:500])])


def _triage(name: str, data: bytes, salt: str, *, max_file_bytes: int, depth: int) -> Triage:
    out = Triage()
    if len(data) == 0:
        out.errors.append(FileError(name, "file is empty"))
        return out
    if len(data) > max_file_bytes:
        out.errors.append(FileError(name, f"file too large ({_mb(len(data))} > limit {_mb(max_file_bytes)})"))
        return out
    suffix = Path(name).suffix.lower()
    if data[:4] == b"PK\x03\x04" or suffix == ".zip":
        if depth > 0:
            out.errors.append(FileError(name, "zip inside a zip is not supported"))
            return out
        return _triage_zip(name, data, salt, max_file_bytes=max_file_bytes)
    for magic, raster_suffix in RASTER_MAGIC.items():
        if data.startswith(magic):
            return _triage_raster(name, data, raster_suffix)
    if suffix in (".png", ".jpg", ".jpeg"):
        out.errors.append(FileError(name, f"not a {suffix[1:].upper()} image (content does not match the name)"))
        return out
    if data[128:132] == b"DICM" or suffix in DICOM_SUFFIXES:
        return _triage_dicom(name, data, salt)
    out.errors.append(FileError(name, f"unsupported file type {suffix!r} (expected DICOM, a zip of DICOM, PNG or JPG)"))
    return out


def _triage_zip(name: str, data: bytes, salt: str, *, max_file_bytes: int) -> Triage:
    out = Triage()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        out.errors.append(FileError(name, f"corrupt zip archive ({exc})"))
        return out
    members = [m for m in members if not _junk_member(m.filename)]
    if not members:
        out.errors.append(FileError(name, "zip archive holds no files"))
        return out
    budget = max_file_bytes * 4  # total uncompressed size: guards against zip bombs
    for member in members:
        label = f"{name}/{member.filename}"
        if member.file_size > max_file_bytes:
            out.errors.append(FileError(label, f"file too large ({_mb(member.file_size)} > limit {_mb(max_file_bytes)})"))
            continue
        budget -= member.file_size
        if budget < 0:
            out.errors.append(FileError(label, "zip archive expands beyond the size limit; rest skipped"))
            break
        try:
            content = archive.read(member)
        except Exception as exc:  # CRC errors, unsupported compression, encrypted members
            out.errors.append(FileError(label, f"cannot extract from zip ({type(exc).__name__}: {exc})"))
            continue
        out.extend(triage_file(label, content, salt, max_file_bytes=max_file_bytes, depth=1))
    return out


def _junk_member(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in ("dicomdir", "thumbs.db")


def _triage_raster(name: str, data: bytes, suffix: str) -> Triage:
    out = Triage()
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            if image.width < 16 or image.height < 16:
                out.errors.append(FileError(name, f"image too small ({image.width}x{image.height})"))
                return out
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        out.errors.append(FileError(name, f"corrupt or truncated image ({type(exc).__name__}: {exc})"))
        return out
    out.accepted.append(Accepted(name=name, data=data, kind="raster", suffix=suffix, modality="OT"))
    return out


def _triage_dicom(name: str, data: bytes, salt: str) -> Triage:
    out = Triage()
    with tempfile.NamedTemporaryFile(suffix=".dcm") as handle:
        handle.write(data)
        handle.flush()
        try:
            ds = read_dataset(handle.name)
        except ImageReadError as exc:
            out.errors.append(FileError(name, exc.reason.replace(handle.name, name)))
            return out
    try:
        accepted = accept_dataset(name, ds, salt)
    except ImageReadError as exc:
        out.errors.append(FileError(name, exc.reason))
        return out
    out.accepted.append(accepted)
    return out


def accept_dataset(name: str, ds: Dataset, salt: str) -> Accepted:
    """Check modality and pixels of a DICOM dataset, de-identify it and serialise it.

    Raises :class:`ImageReadError` with the reason when the dataset cannot be used.
    """
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in SUPPORTED_MODALITIES:
        raise ImageReadError(name, f"unsupported modality {modality or 'none'!r} (lesiondx reads "
                                   f"{' and '.join(SUPPORTED_MODALITIES)})")
    if "PixelData" not in ds:
        raise ImageReadError(name, "DICOM file holds no pixel data (not an image)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = ds.pixel_array
    except Exception as exc:  # truncated pixel data, missing decoder, corrupt JPEG stream
        raise ImageReadError(name, f"corrupt DICOM pixel data ({type(exc).__name__}: {exc})") from exc
    region = _region_from_text(ds) if modality == "CT" else None
    if modality == "CT" and region is None:
        region = _region_from_pixels(ds, pixels)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise ImageReadError(name, "DICOM file lacks a transfer syntax (file meta information)")
    original = capture(ds)
    deidentify(ds, salt)
    original = OriginalIds(original.values, str(ds.get("SOPInstanceUID", "") or ""))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        raise ImageReadError(name, f"cannot re-encode DICOM after de-identification ({exc})") from exc
    return Accepted(name=name, data=buffer.getvalue(), kind="dicom", suffix=".dcm", modality=modality,
                    study_uid=str(ds.get("StudyInstanceUID", "") or "") or None,
                    series_uid=str(ds.get("SeriesInstanceUID", "") or "") or None, region=region, original=original)


def _region_from_text(ds: Dataset) -> str | None:
    text = " ".join(str(ds.get(k, "") or "") for k in
                    ("BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName")).lower()
    if any(word in text for word in CHEST_WORDS):
        return "chest"
    if any(word in text for word in ABDOMEN_WORDS):
        return "abdomen"
    return None


def _region_from_pixels(ds: Dataset, pixels: np.ndarray) -> str | None:
    """Chest when air (< -400 HU) fills a large share of the body outline (the lungs), else abdomen."""
    try:
        if pixels.ndim == 3:
            pixels = pixels[pixels.shape[0] // 2]
        hu = pixels.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
        from scipy import ndimage

        tissue = hu > -400
        body = ndimage.binary_fill_holes(tissue)
        if body.sum() < 0.05 * hu.size:
            return None
        share = float((body & ~tissue).sum()) / float(body.sum())
    except Exception:  # geometry heuristics must never break ingest
        return None
    return "chest" if share > LUNG_FRACTION_CHEST else "abdomen"


def choose_task(accepted: list[Accepted], requested: str | None) -> tuple[str | None, list[FileError], list[Accepted]]:
    """The task for a batch and the files that fit it; files of another kind become errors.

    US and PNG/JPG → ``us-liver``; CT chest → ``ct-covid``; CT abdomen → ``ct-liver``. A requested
    task wins for every file (the user knows best), except that CT never goes to us-liver.
    """
    if requested:
        if requested not in TASK_MODULES:
            return None, [FileError("*", f"unknown task {requested!r}; choose one of {', '.join(TASK_MODULES)}")], []
        return requested, [], list(accepted)
    ct_region = _majority_region(accepted)
    by_task: dict[str, list[Accepted]] = {}
    for item in accepted:
        by_task.setdefault(route(item, ct_region), []).append(item)
    if not by_task:
        return None, [], []
    task = max(by_task, key=lambda t: len(by_task[t]))
    errors = [FileError(item.name, f"belongs to task {t} but this batch is {task}; upload it separately")
              for t, items in by_task.items() if t != task for item in items]
    return task, errors, by_task[task]


def _majority_region(accepted: list[Accepted]) -> str | None:
    """Body region of the CT files taken together (slices of one scan may look different)."""
    votes = [a.region for a in accepted if a.kind == "dicom" and a.modality == "CT" and a.region]
    if not votes:
        return None
    return "chest" if votes.count("chest") >= votes.count("abdomen") else "abdomen"


def route(item: Accepted, ct_region: str | None = None) -> str:
    """The task a file goes to: US and PNG/JPG → us-liver; CT by the batch's body region."""
    if item.kind == "raster" or item.modality == "US":
        return "us-liver"
    return "ct-covid" if (ct_region or item.region) == "chest" else "ct-liver"


def dataset_from_bytes(data: bytes) -> Dataset:
    """Parse stored DICOM bytes (used by the DICOM exporter)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


def display_name(name: str) -> str:
    """The name stored for a file: its last path component, sanitised."""
    return safe_name(name)
