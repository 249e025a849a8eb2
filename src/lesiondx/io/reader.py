"""One entry point that reads whatever a user hands over: file or folder, DICOM, NIfTI or raster."""

from __future__ import annotations

from pathlib import Path

from .decodes import decoded
from .errors import ImageReadError, video_kind
from .image import MedicalImage
from .raster import NIFTI_SUFFIXES, RASTER_SUFFIXES, read_nifti, read_raster, read_slice_files, read_slice_folder


ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".7z", ".rar")


def read_image(path: str | Path, *, frame: int | None = None) -> MedicalImage:
    """Read one file: DICOM (by preamble or .dcm), NIfTI, or PNG/JPG/BMP/TIFF; ``frame`` picks one frame
    (0-based) of a multi-frame DICOM file. A folder is read with :func:`read_study`.

    Raises :class:`ImageReadError` naming the file and the reason for anything unreadable.
    """
    path = Path(path)
    return decoded("image", path, frame, lambda: _read_image(path, frame))


def _read_image(path: Path, frame: int | None) -> MedicalImage:
    if not path.exists():
        raise ImageReadError(path, "file does not exist")
    if path.is_dir():
        return read_study(path)
    if (video := video_kind(path)) is not None:
        raise ImageReadError(path, f"a video file ({video}), not an image: export the frame as PNG or JPEG, or the "
                                   "cine clip as a multi-frame ultrasound DICOM")
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return read_nifti(path)
    if path.suffix.lower() in RASTER_SUFFIXES:
        return read_raster(path)
    from .dicom import is_dicom_file, read_dicom  # pydicom (~0.15 s) only when a file may be DICOM

    if is_dicom_file(path) or path.suffix.lower() in (".dcm", ".dicom", ".ima", ""):
        return read_dicom(path, frame=frame)
    if name.endswith(ARCHIVE_SUFFIXES):
        raise ImageReadError(path, "an archive (zip / tar / 7z): unpack it and give the series folder, or the "
                                   "export folder holding a DICOMDIR")
    raise ImageReadError(path, f"unsupported file type {path.suffix!r} (expected DICOM, NIfTI, PNG or JPG)")


def read_study(folder: str | Path, *, prefer_step_mm: tuple[float, float] | None = None) -> MedicalImage:
    """A folder as a volume: a DICOM series if it holds DICOM files, else a natural-sorted slice stack.
    ``prefer_step_mm``: of several axial DICOM series, one with slices that far apart (mm) goes first."""
    folder = Path(folder)
    kind = "study" if prefer_step_mm is None else f"study@{prefer_step_mm[0]:g}-{prefer_step_mm[1]:g}"
    return decoded(kind, folder, None, lambda: _read_study(folder, prefer_step_mm))


def _read_study(folder: Path, prefer_step_mm: tuple[float, float] | None = None) -> MedicalImage:
    from .dicom import dicom_files_in, is_dicom_file, nested_dicom_files, read_dicom_series

    if not folder.is_dir():
        return read_image(folder)
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    if any(p.suffix.lower() in RASTER_SUFFIXES for p in files) and not any(is_dicom_file(p) for p in files[:50]):
        return read_slice_folder(folder)
    if dicom_files_in(folder) or nested_dicom_files(folder):
        return read_dicom_series(folder, prefer_step_mm=prefer_step_mm)
    raise ImageReadError(folder, "folder holds neither DICOM files nor PNG/JPG slices")


def read_series_files(paths: list[str | Path]) -> MedicalImage:
    """Several files the user says form one series: DICOM files (ordered by position) or plain slice images
    (in the order given, refused when neighbours do not continue one another)."""
    from .dicom import is_dicom_file, read_dicom_series

    paths = [Path(p) for p in paths]
    if not paths:
        raise ImageReadError(Path("."), "no files given")
    for p in paths:
        if not p.is_file():
            raise ImageReadError(p, "not a file: give the slice files of one series")
    if all(p.suffix.lower() in RASTER_SUFFIXES for p in paths):
        return read_slice_files(paths, paths[0].parent)
    if all(is_dicom_file(p) for p in paths):
        return read_dicom_series(paths)
    raise ImageReadError(paths[0].parent, "a series is either DICOM files or PNG/JPG slices, not a mix")
