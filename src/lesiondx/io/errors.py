"""The one error type every reader raises for input it cannot use."""

from __future__ import annotations

from pathlib import Path


class ImageReadError(Exception):
    """A file or folder could not be read as a medical image.

    ``path`` names the offending file and ``reason`` says why, in words a user can act on.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


def require_nonempty_file(path: str | Path) -> Path:
    """``path`` as a Path if it is an existing, non-empty file; else :class:`ImageReadError`."""
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty")
    return path


STILL_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"avif", b"avis")  # ISO-BMFF brands of still photos (HEIC, AVIF)


def video_kind(path: Path) -> str | None:
    """``"MP4 / QuickTime"``, ``"AVI"`` or ``"Matroska / WebM"`` when the file starts like that video container
    (whatever its name ends in: a cine clip renamed .jpg or .dcm), else ``None``."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
    except OSError:
        return None
    if head[4:8] == b"ftyp" and head[8:12] not in STILL_BRANDS:
        return "MP4 / QuickTime"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "AVI"
    return "Matroska / WebM" if head[:4] == b"\x1a\x45\xdf\xa3" else None


class NotAnImage(ImageReadError):
    """A readable DICOM file that holds no image: a dose or structured report (SR), a DICOMDIR, a presentation
    state. A folder read as a series skips and names it; asked for on its own, it is an error like any other."""
