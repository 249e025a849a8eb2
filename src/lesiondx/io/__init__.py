"""Medical-image I/O: DICOM (series, multi-frame, compressed), NIfTI, PNG/JPG; windows; de-identification.

Every reader returns a :class:`MedicalImage` and raises :class:`ImageReadError` (naming the file
and the reason) for anything it cannot read.

Names are imported on first use (PEP 562): ``from lesiondx.io import read_raster`` does not import pydicom
or scipy.signal.
"""

from __future__ import annotations

from lesiondx._lazy import lazy_names

_WHERE: dict[str, str] = {
    **dict.fromkeys(["deidentify", "pseudonym", "remap_uid"], "deid"),
    **dict.fromkeys(["guess_phase", "is_dicom_file", "read_dataset", "read_dicom", "read_dicom_series"], "dicom"),
    **dict.fromkeys(["ImageReadError"], "errors"),
    **dict.fromkeys(["MedicalImage"], "image"),
    **dict.fromkeys(["natural_key", "read_nifti", "read_raster", "read_raster_array", "read_slice_folder"], "raster"),
    **dict.fromkeys(["EVALUATE_MAX_BYTES", "shared_decodes"], "decodes"),
    **dict.fromkeys(["read_image", "read_series_files", "read_study"], "reader"),
    **dict.fromkeys([
        "AUTO", "WINDOWS", "Window", "WindowEstimate", "apply_window", "display_grey", "estimate_window",
        "get_window", "grey_to_hu", "parse_window_option", "resample", "resize", "to_display"
    ], "windows"),
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_names(__name__, _WHERE)
