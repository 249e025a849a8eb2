"""The typed image/volume object that every reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MedicalImage:
    """Pixels plus the geometry and context needed to interpret them.

    Attributes:
        pixels: float32 array, ``(rows, cols)`` for one image or ``(slices, rows, cols)`` for a
            volume. CT read from DICOM/NIfTI is in Hounsfield units; other sources keep their
            stored values (8/16-bit grey levels).
        spacing: millimetres per pixel, ``(row, col)`` or ``(slice, row, col)``; ``None`` when the
            source carries none (plain JPEG/PNG).
        modality: DICOM modality code (``"CT"``, ``"US"``, ``"MR"``...) or ``"OT"`` when unknown.
        orientation: DICOM ImageOrientationPatient (6 direction cosines) or ``None``.
        phase: contrast phase (``"arterial"``, ``"portal-venous"``, ``"delayed"``,
            ``"non-contrast"``) when known.
        sources: the file(s) the pixels came from; for a volume, one per slice in slice order
            (superior to inferior for DICOM series).
        positions: for DICOM volumes, each slice's position along the slice normal in mm.
        is_hu: ``True`` when pixel values are Hounsfield units.
        metadata: a few non-identifying tags (UIDs, series description) useful downstream.
        warnings: what the reader skipped or assumed (non-DICOM files in a folder, other series), for the output.
        chroma: colour sources only (RGB, YBR, palette): max − min of R, G, B per pixel (uint8, 0..255, the shape
            of ``pixels``), so that a gate can see coloured graphics (calipers, Doppler) in a frame read as grey;
            ``None`` for grey sources.
    """

    pixels: np.ndarray
    spacing: tuple[float, ...] | None = None
    modality: str = "OT"
    orientation: tuple[float, ...] | None = None
    phase: str | None = None
    sources: tuple[Path, ...] = ()
    positions: tuple[float, ...] | None = None
    is_hu: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    chroma: np.ndarray | None = None

    @property
    def is_volume(self) -> bool:
        """True for a ``(slices, rows, cols)`` stack."""
        return self.pixels.ndim == 3

    @property
    def n_slices(self) -> int:
        """Number of slices (1 for a single 2D image)."""
        return int(self.pixels.shape[0]) if self.is_volume else 1

    @property
    def source(self) -> Path | None:
        """The first source file (the only one for a 2D image)."""
        return self.sources[0] if self.sources else None

    def slice(self, index: int) -> "MedicalImage":
        """One slice of a volume as a 2D image (index 0 = first in slice order)."""
        if not self.is_volume:
            if index != 0:
                raise IndexError(f"2D image has only slice 0, not {index}")
            return self
        spacing = self.spacing[1:] if self.spacing is not None else None
        src = (self.sources[index],) if len(self.sources) == self.n_slices else self.sources
        pos = (self.positions[index],) if self.positions is not None else None
        chroma = self.chroma[index] if self.chroma is not None and self.chroma.ndim == 3 else self.chroma
        return replace(self, pixels=self.pixels[index], spacing=spacing, sources=src, positions=pos, chroma=chroma)

    def with_pixels(self, pixels: np.ndarray, spacing: tuple[float, ...] | None = None) -> "MedicalImage":
        """A copy with new pixels (and optionally new spacing), all else kept (``chroma`` only when the shape is)."""
        chroma = self.chroma if self.chroma is not None and self.chroma.shape == np.shape(pixels) else None
        return replace(self, pixels=pixels, spacing=spacing if spacing is not None else self.spacing, chroma=chroma)
