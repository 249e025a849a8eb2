"""Triage of incoming files: DICOM / zip of DICOM / PNG / JPG in, de-identified accepted files out.

Every problem with a file becomes a :class:`FileError` naming the file (by its pseudonym) and the
reason (empty, not an image, corrupt DICOM, unsupported modality, too large...); nothing here raises
on bad input. Client file names never get past :func:`pseudonyms`. DICOM is de-identified with
:func:`lesiondx.io.deid.deidentify` (PS3.15 Basic Profile) *before* it is stored, after its size was
checked from the header and its pixels decoded once; PNG/JPG are re-encoded from their pixels
(no EXIF, ICC, comments or text chunks). Size limits live in :mod:`.bounds`.
"""

from __future__ import annotations

import io
import logging
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.dataset import Dataset

from lesiondx.io import ImageReadError, guess_phase, natural_key, read_dataset
from lesiondx.io.deid import deidentify
from lesiondx.io.deid.raster import STORED_SUFFIX, scrub_raster
from lesiondx.io.enhanced import group_value
from lesiondx.io.series import spread_indices
from lesiondx.tasks import TASK_MODULES

from .bounds import IngestPolicy, ZipRefused, burned_in_reason, iter_zip, pixel_limit_reason
from .identity import OriginalIds, capture
from .storage import safe_name

log = logging.getLogger("lesiondx.service.ingest")
# Pillow logs EXIF / PNG text values at DEBUG and pydicom logs invalid element values as warnings: image
# metadata (PHI) must never reach the service log, whatever its level.
logging.getLogger("PIL").setLevel(logging.INFO)
logging.getLogger("pydicom").setLevel(logging.ERROR)

SUPPORTED_MODALITIES = ("US", "CT")
RASTER_MAGIC = {b"\x89PNG\r\n\x1a\n": ".png", b"\xff\xd8\xff": ".jpg"}
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima", "")
# Suffixes a pseudonym keeps (others become ".bin"): they say what the file is, never who it is about.
SAFE_SUFFIXES = (".dcm", ".dicom", ".ima", ".png", ".jpg", ".jpeg", ".zip", ".txt", ".pdf", ".gif", ".bmp", ".tif",
                 ".tiff", ".nii", ".gz", ".json", ".xml", ".csv", ".html", ".doc", ".docx", ".mp4", ".avi")
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
    """A file ready to store: bytes (de-identified DICOM, or PNG re-encoded from the pixels) plus what routing
    needs. ``name`` is the file's pseudonym (``file-003.png``), never the client's file name."""

    name: str
    data: bytes
    kind: str  # "dicom" | "raster"
    suffix: str
    modality: str
    study_uid: str | None = None
    series_uid: str | None = None
    region: str | None = None  # "chest" | "abdomen" | None (unknown)
    warnings: tuple[str, ...] = ()  # e.g. burned-in text likely (shown on the study)
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


def safe_suffix(name: str) -> str:
    """The name's suffix when it is a common file type (lower case), else ``.bin``; ``""`` when it has none."""
    suffix = Path(name.replace("\\", "/").rsplit("/", 1)[-1]).suffix.lower()
    if not suffix:
        return ""
    return suffix if suffix in SAFE_SUFFIXES else ".bin"


def pseudonyms(names: list[str], prefix: str = "file") -> list[str]:
    """Pseudonymous file names (``file-001.jpg``...) numbered in natural order of the client's names, so the
    CT slice order taken from names survives; only a common suffix is kept. Same length and order as ``names``."""
    order = sorted(range(len(names)), key=lambda i: (natural_key(names[i] or ""), i))
    width = max(3, len(str(len(names))))
    out = [""] * len(names)
    for rank, index in enumerate(order, start=1):
        out[index] = f"{prefix}-{rank:0{width}d}{safe_suffix(names[index] or '')}"
    return out


def triage_file(name: str, data: bytes, salt: str, *, max_file_bytes: int | None = None,
                policy: IngestPolicy | None = None, depth: int = 0) -> Triage:
    """Classify one uploaded file (a zip is opened and its members triaged). Never raises.

    ``name`` must already be a pseudonym (see :func:`pseudonyms`): it is stored, shown and used in errors.
    """
    policy = policy or IngestPolicy()
    if max_file_bytes is not None:
        policy = replace(policy, max_file_bytes=max_file_bytes)
    try:
        return _triage(name or "unnamed", data, salt, policy=policy, depth=depth)
    except Exception as exc:  # a reader bug must not turn one bad file into a failed request
        log.warning("triage of %s failed: %s", name or "unnamed", type(exc).__name__)
        return Triage(errors=[FileError(name or "unnamed", f"cannot read file ({type(exc).__name__})")])


def _triage(name: str, data: bytes, salt: str, *, policy: IngestPolicy, depth: int) -> Triage:
    out = Triage()
    if len(data) == 0:
        out.errors.append(FileError(name, "file is empty"))
        return out
    if len(data) > policy.max_file_bytes:
        out.errors.append(FileError(name, f"file too large ({_mb(len(data))} > limit {_mb(policy.max_file_bytes)})"))
        return out
    suffix = Path(name).suffix.lower()
    if data[:4] == b"PK\x03\x04" or suffix == ".zip":
        if depth > 0:
            out.errors.append(FileError(name, "zip inside a zip is not supported"))
            return out
        return _triage_zip(name, data, salt, policy=policy)
    for magic in RASTER_MAGIC:
        if data.startswith(magic):
            return _triage_raster(name, data, policy)
    if suffix in (".png", ".jpg", ".jpeg"):
        out.errors.append(FileError(name, f"not a {suffix[1:].upper()} image (content does not match the name)"))
        return out
    if data[128:132] == b"DICM" or suffix in DICOM_SUFFIXES:
        return _triage_dicom(name, data, salt, policy)
    out.errors.append(FileError(name, f"unsupported file type {suffix!r} (expected DICOM, a zip of DICOM, PNG or JPG)"))
    return out


def _triage_zip(name: str, data: bytes, salt: str, *, policy: IngestPolicy) -> Triage:
    """Members in chunks under the zip limits (:func:`bounds.iter_zip`); members get pseudonyms under the zip's."""
    out = Triage()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [m for m in archive.infolist() if not m.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        out.errors.append(FileError(name, f"corrupt zip archive ({type(exc).__name__})"))
        return out
    members = [m for m in members if not _junk_member(m.filename)]
    if not members:
        out.errors.append(FileError(name, "zip archive holds no files"))
        return out
    labels = dict(zip((id(m) for m in members), pseudonyms([m.filename for m in members], Path(name).stem)))
    try:
        for member, content, reason in iter_zip(archive, members, policy):
            label = labels[id(member)]
            if content is None:
                out.errors.append(FileError(label, reason or "cannot extract from zip"))
            else:
                out.extend(triage_file(label, content, salt, policy=policy, depth=1))
    except ZipRefused as exc:
        out.errors.append(FileError(name, f"zip archive refused: {exc.reason}; rest skipped"))
    return out


def _junk_member(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in ("dicomdir", "thumbs.db")


def _triage_raster(name: str, data: bytes, policy: IngestPolicy) -> Triage:
    """Size from the header first (nothing decoded above the pixel limit), then pixels re-encoded as PNG."""
    out = Triage()
    stem = Path(name).stem
    try:
        with Image.open(io.BytesIO(data)) as image:
            too_big = pixel_limit_reason(image.height, image.width, 1, policy)
            if too_big:
                out.errors.append(FileError(name, too_big))
                return out
            if image.width < 16 or image.height < 16:
                out.errors.append(FileError(name, f"image too small ({image.width}x{image.height})"))
                return out
            image.load()
            clean = scrub_raster(image)
    except Image.DecompressionBombError:
        out.errors.append(FileError(name, "image too large to decode (LESIONDX_MAX_PIXELS)"))
        return out
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        out.errors.append(FileError(name, f"corrupt or truncated image ({type(exc).__name__})"))
        return out
    warning = burned_in_reason("OT", "", raster=True)
    if warning and policy.refuse_burned_in:
        out.errors.append(FileError(name, f"refused: {warning} (LESIONDX_REFUSE_BURNED_IN)"))
        return out
    out.accepted.append(Accepted(name=stem + STORED_SUFFIX, data=clean, kind="raster", suffix=STORED_SUFFIX,
                                 modality="OT", warnings=(warning,) if warning else ()))
    return out


def _triage_dicom(name: str, data: bytes, salt: str, policy: IngestPolicy) -> Triage:
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
        accepted = accept_dataset(name, ds, salt, policy)
    except ImageReadError as exc:
        out.errors.append(FileError(name, exc.reason))
        return out
    out.accepted.append(accepted)
    return out


def accept_dataset(name: str, ds: Dataset, salt: str, policy: IngestPolicy | None = None) -> Accepted:
    """Check modality, burned-in text, size and pixels of a DICOM dataset, de-identify it and serialise it.

    Raises :class:`ImageReadError` with the reason when the dataset cannot be used.
    """
    policy = policy or IngestPolicy()
    modality = str(ds.get("Modality", "") or "").upper()
    if not modality and "PixelData" not in ds:  # e.g. a C-STORE of a file cut short before its first tags
        raise ImageReadError(name, "incomplete or truncated DICOM instance: no Modality and no pixel data")
    if modality not in SUPPORTED_MODALITIES:
        raise ImageReadError(name, f"unsupported modality {modality or 'none'!r} (lesiondx reads "
                                   f"{' and '.join(SUPPORTED_MODALITIES)})")
    if "PixelData" not in ds:
        raise ImageReadError(name, "DICOM file holds no pixel data (not an image)")
    warning = burned_in_reason(modality, str(ds.get("BurnedInAnnotation", "") or ""))
    if warning and policy.refuse_burned_in:
        raise ImageReadError(name, f"refused: {warning} (LESIONDX_REFUSE_BURNED_IN)")
    too_big = pixel_limit_reason(_int(ds.get("Rows")), _int(ds.get("Columns")), _int(ds.get("NumberOfFrames"), 1),
                                 policy)
    if too_big:
        raise ImageReadError(name, too_big)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pixels = ds.pixel_array
    except Exception as exc:  # truncated pixel data, missing decoder, corrupt JPEG stream
        raise ImageReadError(name, f"corrupt DICOM pixel data ({type(exc).__name__}: {exc})"[:500]) from exc
    cut = cut_frames(ds)
    if cut:
        raise ImageReadError(name, f"corrupt DICOM pixel data: compressed frame(s) {cut} cut short (no end-of-image "
                                   "marker; the decoder would fill the rest of the image with noise)")
    region = _region_from_text(ds) if modality == "CT" else None
    if modality == "CT" and region is None:
        region = _region_from_pixels(ds, pixels)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        raise ImageReadError(name, "DICOM file lacks a transfer syntax (file meta information)")
    original = capture(ds)
    deidentify(ds, salt, options=policy.deid, phase=guess_phase(ds))
    original = OriginalIds(original.values, str(ds.get("SOPInstanceUID", "") or ""))
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        raise ImageReadError(name, f"cannot re-encode DICOM after de-identification ({exc})"[:500]) from exc
    return Accepted(name=name, data=buffer.getvalue(), kind="dicom", suffix=".dcm", modality=modality,
                    study_uid=str(ds.get("StudyInstanceUID", "") or "") or None,
                    series_uid=str(ds.get("SeriesInstanceUID", "") or "") or None, region=region,
                    warnings=(warning,) if warning else (), original=original)


MARKER_ENDED = ("1.2.840.10008.1.2.4.5", "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.8", "1.2.840.10008.1.2.4.9",
                "1.2.840.10008.1.2.4.20")  # JPEG, JPEG lossless, JPEG-LS, JPEG 2000, HTJ2K: streams end with FFD9


def cut_frames(ds: Dataset) -> str:
    """Which compressed frames (1-based, e.g. ``"1"`` or ``"2, 5"``) lack the end-of-image / end-of-codestream
    marker FFD9 their transfer syntax ends every frame with: a stream cut short, which decoders accept and fill
    with noise. '' when none, or when the transfer syntax has no such marker (uncompressed, RLE, deflate)."""
    syntax = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not syntax.startswith(MARKER_ENDED):
        return ""
    from pydicom.encaps import generate_frames

    try:
        frames = list(generate_frames(ds.PixelData, number_of_frames=_int(ds.get("NumberOfFrames"), 1)))
    except Exception:
        return ""  # the decoder read it: leave the layout to it
    return ", ".join(str(i) for i, frame in enumerate(frames, 1) if not frame.rstrip(b"\x00").endswith(b"\xff\xd9"))


def _int(value: object, default: int = 0) -> int:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _region_from_text(ds: Dataset) -> str | None:
    text = " ".join(str(ds.get(k, "") or "") for k in
                    ("BodyPartExamined", "StudyDescription", "SeriesDescription", "ProtocolName")).lower()
    if any(word in text for word in CHEST_WORDS):
        return "chest"
    if any(word in text for word in ABDOMEN_WORDS):
        return "abdomen"
    return None


def _region_from_pixels(ds: Dataset, pixels: np.ndarray) -> str | None:
    """Chest when air (< -400 HU) fills a large share of the body outline (the lungs), else abdomen. A multi-frame
    image (Enhanced CT) is judged on up to :data:`REGION_FRAMES` frames spread over its length, each rescaled with
    its own functional groups' slope and intercept, by majority (ties: chest, as for a batch of slices)."""
    try:
        if pixels.ndim == 2:
            votes = [_frame_region(pixels, *_rescale(ds, 0))]
        else:
            frames = spread_indices(pixels.shape[0], REGION_FRAMES, ends=False)  # off the neck and upper abdomen
            votes = [_frame_region(pixels[i], *_rescale(ds, i)) for i in frames]
    except Exception:  # geometry heuristics must never break ingest
        return None
    found = [v for v in votes if v]
    if not found:
        return None
    return "chest" if found.count("chest") >= found.count("abdomen") else "abdomen"


REGION_FRAMES = 5  # frames of a multi-frame CT judged for its body region


def _rescale(ds: Dataset, frame: int) -> tuple[float, float]:
    """(slope, intercept) to HU of one frame: top level, else its functional groups (per-frame, else shared)."""
    if "RescaleSlope" in ds or "RescaleIntercept" in ds:
        return float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    slope, intercept = (group_value(ds, "PixelValueTransformationSequence", keyword, frame)
                        for keyword in ("RescaleSlope", "RescaleIntercept"))
    return float(slope or 1), float(intercept or 0)


def _frame_region(pixels: np.ndarray, slope: float, intercept: float) -> str | None:
    from scipy import ndimage

    hu = pixels.astype(np.float32) * slope + intercept
    tissue = hu > -400
    body = ndimage.binary_fill_holes(tissue)
    if body.sum() < 0.05 * hu.size:
        return None
    share = float((body & ~tissue).sum()) / float(body.sum())
    return "chest" if share > LUNG_FRACTION_CHEST else "abdomen"


def choose_task(accepted: list[Accepted], requested: str | None) -> tuple[str | None, list[FileError], list[Accepted]]:
    """The task for a batch and the files that fit it; files of another kind become errors.

    US and PNG/JPG → ``us-liver``; CT chest → ``ct-covid``; CT abdomen → ``ct-liver``. A requested
    task wins for every file (the user knows best: a chest CT may go to ct-liver, PNG/JPG slices to a CT
    task), except that a DICOM image's modality must be the task's: CT never goes to us-liver, US never
    to a CT task (each such file becomes an error naming it).
    """
    if requested:
        if requested not in TASK_MODULES:
            return None, [FileError("*", f"unknown task {requested!r}; choose one of {', '.join(TASK_MODULES)}")], []
        reasons = [(item, _modality_mismatch(item, requested)) for item in accepted]
        return requested, [FileError(i.name, why) for i, why in reasons if why], [i for i, why in reasons if not why]
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


def _modality_mismatch(item: Accepted, task: str) -> str:
    """Why a DICOM image cannot go to the requested ``task`` ('' when it can)."""
    if item.kind != "dicom" or item.modality not in ("CT", "US") or (item.modality == "US") == (task == "us-liver"):
        return ""
    if item.modality == "CT":
        return f"a CT image, but task {task} reads ultrasound: send CT with task ct-covid or ct-liver, or without a task"
    return f"an ultrasound (US) image, but task {task} reads CT: send it with task us-liver, or without a task"


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
