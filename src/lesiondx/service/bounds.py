"""Upload-side resource bounds and policy: pixel counts read from headers, zip members read in chunks.

Nothing here decodes an image or inflates a zip member beyond a limit: a 12000² PNG is refused from
its header, and a zip member is read 1 MB at a time and dropped as soon as it passes the per-member
size, the archive's total or the compression-ratio limit.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from lesiondx.io.deid import DeidOptions

from .settings import Settings

MB = 1024 * 1024
CHUNK = 1024 * 1024
RATIO_GRACE_BYTES = 256 * 1024  # members this small are never judged by their compression ratio
BURNED_IN_MODALITIES = ("US", "OT", "SC", "XC", "ES", "GM", "SM")  # text is usually burned into the pixels


@dataclass(frozen=True)
class IngestPolicy:
    """Limits and options applied to every incoming file (REST and DICOM node alike)."""

    max_file_bytes: int = 100 * MB
    max_pixels: int = 50_000_000  # rows × columns × frames, checked before decoding
    zip_max_members: int = 5000
    zip_max_total_bytes: int = 400 * MB  # uncompressed, whole archive
    zip_max_ratio: float = 100.0  # uncompressed / compressed bytes of one member
    refuse_burned_in: bool = False
    deid: DeidOptions = field(default_factory=DeidOptions)

    @classmethod
    def from_settings(cls, settings: Settings) -> "IngestPolicy":
        """The policy of the service's settings (fields of the same names, ``deid_*`` for the options)."""
        return cls(max_file_bytes=settings.max_file_bytes, max_pixels=settings.max_pixels,
                   zip_max_members=settings.zip_max_members, zip_max_total_bytes=settings.zip_max_total_bytes,
                   zip_max_ratio=settings.zip_max_ratio, refuse_burned_in=settings.refuse_burned_in,
                   deid=DeidOptions(dates=settings.deid_dates,
                                    patient_characteristics=settings.deid_patient_characteristics))


class ZipRefused(Exception):
    """The rest of an archive is not read: ``reason`` says which limit it passed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def pixel_limit_reason(rows: int, cols: int, frames: int, policy: IngestPolicy) -> str | None:
    """Why an image of this size is refused before decoding, or None when it fits."""
    total = max(0, rows) * max(0, cols) * max(1, frames)
    if total <= policy.max_pixels:
        return None
    shape = f"{cols}x{rows}" + (f"x{frames} frames" if frames > 1 else "")
    return (f"image too large to decode: {shape} = {total / 1e6:.1f} Mpx > limit {policy.max_pixels / 1e6:.1f} Mpx "
            "(LESIONDX_MAX_PIXELS)")


def burned_in_reason(modality: str, flag: str, *, raster: bool = False) -> str | None:
    """A warning when the pixels probably carry burned-in text (names, dates) de-identification cannot remove."""
    flag = (flag or "").strip().upper()
    if flag == "YES":
        return "BurnedInAnnotation is YES: the pixels carry burned-in text that de-identification does not remove"
    if raster:
        return "PNG/JPG images (screen captures) often carry burned-in text; lesiondx does not clean pixels"
    if modality in BURNED_IN_MODALITIES and flag != "NO":
        return (f"{modality} images usually carry burned-in text (BurnedInAnnotation {flag or 'not stated'}); "
                "lesiondx does not clean pixels")
    return None


def _read_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, policy: IngestPolicy, used: int) -> bytes:
    """One member's bytes, read in chunks; :class:`ZipRefused` as soon as a limit is passed."""
    chunks: list[bytes] = []
    size = 0
    ratio_cap = max(RATIO_GRACE_BYTES, policy.zip_max_ratio * max(member.compress_size, 1))
    with archive.open(member) as handle:
        while chunk := handle.read(CHUNK):
            size += len(chunk)
            if size > policy.max_file_bytes:
                raise ZipRefused(f"a member expands beyond the per-file limit of {policy.max_file_bytes / MB:.1f} MB "
                                 "(LESIONDX_MAX_FILE_MB)")
            if used + size > policy.zip_max_total_bytes:
                raise ZipRefused(f"archive expands beyond {policy.zip_max_total_bytes / MB:.0f} MB "
                                 "(LESIONDX_ZIP_MAX_TOTAL_MB)")
            if size > ratio_cap:
                raise ZipRefused(f"a member is compressed more than {policy.zip_max_ratio:g}:1 (zip bomb? "
                                 "LESIONDX_ZIP_MAX_RATIO)")
            chunks.append(chunk)
    return b"".join(chunks)


def iter_zip(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo], policy: IngestPolicy
             ) -> Iterator[tuple[zipfile.ZipInfo, bytes | None, str | None]]:
    """``(member, bytes, None)`` or ``(member, None, reason)`` per member; raises :class:`ZipRefused`
    for the archive as a whole (too many members, total or ratio limit passed)."""
    if len(members) > policy.zip_max_members:
        raise ZipRefused(f"archive holds {len(members)} files > limit {policy.zip_max_members} "
                         "(LESIONDX_ZIP_MAX_MEMBERS)")
    used = 0
    for member in members:
        if member.file_size > policy.max_file_bytes:  # declared size: refused without inflating
            yield member, None, (f"file too large ({member.file_size / MB:.1f} MB > limit "
                                 f"{policy.max_file_bytes / MB:.1f} MB)")
            continue
        try:
            content = _read_member(archive, member, policy, used)
        except ZipRefused:
            raise
        except Exception as exc:  # CRC errors, unsupported compression, encrypted members
            yield member, None, f"cannot extract from zip ({type(exc).__name__})"
            continue
        used += len(content)
        yield member, content, None
