"""Medical-image I/O: DICOM (series, multi-frame, compressed), NIfTI, PNG/JPG; windows; de-identification.

Every reader returns a :class:`MedicalImage` and raises :class:`ImageReadError` (naming the file
and the reason) for anything it cannot read.
"""

from .deid import deidentify, pseudonym, remap_uid
from .dicom import guess_phase, is_dicom_file, read_dataset, read_dicom, read_dicom_series
from .errors import ImageReadError
from .image import MedicalImage
from .raster import natural_key, read_nifti, read_raster, read_raster_array, read_slice_folder
from .reader import read_image, read_series_files, read_study
from .windows import (AUTO, WINDOWS, Window, WindowEstimate, apply_window, display_grey, estimate_window, get_window,
                      parse_window_option, resample, resize, to_display)

__all__ = [
    "ImageReadError", "MedicalImage", "WINDOWS", "Window", "WindowEstimate", "apply_window", "deidentify", "display_grey",
    "estimate_window", "get_window", "parse_window_option", "AUTO",
    "guess_phase", "is_dicom_file", "natural_key", "pseudonym", "read_dataset", "read_dicom",
    "read_dicom_series", "read_image", "read_nifti", "read_raster", "read_raster_array",
    "read_series_files", "read_slice_folder", "read_study", "remap_uid", "resample", "resize", "to_display",
]
