"""One decode per input file inside a block: :func:`shared_decodes` and the lookup the readers make.

The service's worker wraps a job in ``shared_decodes()`` (input previews, the stack viewer's slices and the
predictor share one decode of a CT series); ``evaluate`` wraps its row screen and its scoring in a bounded one
(``max_bytes``), so that a slice read to check it is not decoded again to score it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from .image import MedicalImage

EVALUATE_MAX_BYTES = 1 << 30
"""What ``evaluate`` keeps decoded at most (1 GiB of pixels and colour planes, least recently used dropped
first): a folder smaller than that is decoded once; a larger one once more for scoring, never a third time."""


def image_nbytes(image: MedicalImage) -> int:
    """Bytes an image holds decoded: its pixels plus its colour plane (``chroma``, uint8: a quarter of float32
    grey more for colour sources)."""
    return int(image.pixels.nbytes) + (int(image.chroma.nbytes) if image.chroma is not None else 0)


class _Decodes:
    """Decoded images by (kind, file, frame, size, mtime); least recently used dropped beyond ``max_bytes``."""

    def __init__(self, max_bytes: int | None) -> None:
        self.max_bytes = max_bytes
        self.images: OrderedDict[tuple, MedicalImage] = OrderedDict()
        self.nbytes = 0

    def get(self, key: tuple) -> MedicalImage | None:
        image = self.images.get(key)
        if image is not None:
            self.images.move_to_end(key)
        return image

    def put(self, key: tuple, image: MedicalImage) -> None:
        image.pixels.flags.writeable = False
        if image.chroma is not None:
            image.chroma.flags.writeable = False
        self.images[key] = image
        self.nbytes += image_nbytes(image)
        while self.max_bytes is not None and self.nbytes > self.max_bytes and len(self.images) > 1:
            _, dropped = self.images.popitem(last=False)
            self.nbytes -= image_nbytes(dropped)


_DECODES: ContextVar[_Decodes | None] = ContextVar("lesiondx_shared_decodes", default=None)


@contextmanager
def shared_decodes(max_bytes: int | None = None) -> Iterator[None]:
    """Within the block (same thread or task), :func:`~lesiondx.io.read_image` and
    :func:`~lesiondx.io.read_study` decode each file or folder once: a later call for the same path (same size and
    modification time) and frame returns the same :class:`MedicalImage`, its pixels made read-only so that no
    reader can change what another sees. A DICOM series read file by file also takes the slices already decoded.
    ``max_bytes``: keep at most that many bytes of pixels (least recently used dropped first); ``None``: keep
    every image until the block ends."""
    token = _DECODES.set(_Decodes(max_bytes))
    try:
        yield
    finally:
        _DECODES.reset(token)


def decoded(kind: str, path: Path, frame: int | None, read: Callable[[], MedicalImage], *,
            keep: bool = True) -> MedicalImage:
    """``read()``, or the image already decoded for ``path`` in this :func:`shared_decodes` block.
    ``keep=False``: use an earlier decode but do not keep this one (a series' slices, already kept as the
    series: keeping them too would hold the pixels twice)."""
    cache = _DECODES.get()
    if cache is None:
        return read()
    try:
        stat = path.stat()
        key = (kind, str(path.resolve()), frame, stat.st_size, stat.st_mtime_ns)
    except OSError:
        return read()  # the reader names the problem
    image = cache.get(key)
    if image is None:
        image = read()
        if keep:
            cache.put(key, image)
    return image
