"""Ultrasound DICOM files of the kinds scanners send, generated at test time from one real AUL JPEG
(RGB, YBR_FULL, PALETTE COLOR, big-endian, JPEG 2000, JPEG baseline YBR_FULL_422, multi-frame cine)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space
from pydicom.uid import (JPEG2000Lossless, ExplicitVRBigEndian, ExplicitVRLittleEndian, JPEGBaseline8Bit,
                         UltrasoundImageStorage, UltrasoundMultiFrameImageStorage, generate_uid)

DELTA_CM = 0.025  # PhysicalDeltaX/Y of the generated regions: 0.25 mm per pixel


def _base(rows: int, cols: int, *, frames: int = 1) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    sop_class = UltrasoundMultiFrameImageStorage if frames > 1 else UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "US", "SYNTH", "Synthetic^Test"
    ds.Rows, ds.Columns = rows, cols
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    region = Dataset()
    region.RegionSpatialFormat, region.RegionDataType = 1, 1
    region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = cols - 1, rows - 1
    region.PhysicalUnitsXDirection, region.PhysicalUnitsYDirection = 3, 3  # cm
    region.PhysicalDeltaX, region.PhysicalDeltaY = DELTA_CM, DELTA_CM
    ds.SequenceOfUltrasoundRegions = [region]
    if frames > 1:
        ds.NumberOfFrames = frames
    return ds


def _rgb(ds: Dataset, rgb: np.ndarray, photometric: str = "RGB") -> Dataset:
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric, 0
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return ds


def _grey(ds: Dataset, grey: np.ndarray) -> Dataset:
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PixelData = np.ascontiguousarray(grey, dtype=np.uint8).tobytes()
    return ds


def write_kinds(jpeg: Path, folder: Path) -> dict[str, Path]:
    """One file per kind in ``folder``; keys: rgb, ybr_full, palette, big_endian, jpeg2000, jpeg_ybr_422, cine."""
    folder.mkdir(parents=True, exist_ok=True)
    with Image.open(jpeg) as img:
        rgb = np.asarray(img.convert("RGB"))
        grey = np.asarray(img.convert("L"))
    rows, cols = grey.shape
    out: dict[str, Dataset] = {}
    out["rgb"] = _rgb(_base(rows, cols), rgb)
    out["ybr_full"] = _rgb(_base(rows, cols), convert_color_space(rgb, "RGB", "YBR_FULL"), "YBR_FULL")
    pal = _base(rows, cols)
    pal.SamplesPerPixel, pal.PhotometricInterpretation = 1, "PALETTE COLOR"
    pal.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ramp = (np.arange(256, dtype=np.uint16) * 257).astype("<u2").tobytes()  # 16-bit grey ramp LUT
    for colour in ("Red", "Green", "Blue"):
        setattr(pal, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
        setattr(pal, f"{colour}PaletteColorLookupTableData", ramp)
    pal.PixelData = np.ascontiguousarray(grey, dtype=np.uint8).tobytes()
    out["palette"] = pal
    big = _base(rows, cols)
    big.SamplesPerPixel, big.PhotometricInterpretation = 1, "MONOCHROME2"
    big.BitsAllocated, big.BitsStored, big.HighBit = 16, 16, 15
    big.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    big.PixelData = grey.astype(">u2").tobytes()
    out["big_endian"] = big
    j2k = _base(rows, cols)
    j2k.SamplesPerPixel, j2k.PhotometricInterpretation, j2k.PlanarConfiguration = 3, "RGB", 0
    j2k.compress(JPEG2000Lossless, np.ascontiguousarray(rgb), encoding_plugin="pylibjpeg")
    out["jpeg2000"] = j2k
    lossy = _base(rows, cols)
    lossy.SamplesPerPixel, lossy.PhotometricInterpretation, lossy.PlanarConfiguration = 3, "YBR_FULL_422", 0
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=95, subsampling=1)  # 4:2:2
    lossy.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    lossy.PixelData = encapsulate([buffer.getvalue()])
    lossy["PixelData"].VR = "OB"
    lossy.LossyImageCompression = "01"
    out["jpeg_ybr_422"] = lossy
    cine = _base(rows, cols, frames=3)
    gain = np.where(grey > 10, np.clip(grey.astype(int) + 20, 0, 255), grey)  # more gain: echoes brighter, black stays
    frames = np.stack([grey[:, ::-1], grey, gain]).astype(np.uint8)
    out["cine"] = _grey(cine, frames.reshape(3, rows, cols))
    paths = {}
    for kind, ds in out.items():
        path = folder / f"us_{kind}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths[kind] = path
    return paths
