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


class NotAnImage(ImageReadError):
    """A readable DICOM file that holds no image: a dose or structured report (SR), a DICOMDIR, a presentation
    state. A folder read as a series skips and names it; asked for on its own, it is an error like any other."""
