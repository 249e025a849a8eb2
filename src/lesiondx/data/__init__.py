"""Dataset folders as manifests, patient-grouped splits, and ROIs from masks."""

from .layouts import LAYOUTS, DatasetLayout, detect_layout, read_lesion_table
from .manifest import MASK_COLUMNS, Manifest, ManifestError, load_manifest
from .rois import QUADRANTS, Box, background_roi, boxes_from_mask, lesion_roi, mask_box, quadrant, square_crop
from .splits import external_split, grouped_kfold, grouped_split, patients_on_several_sides
from .summary import DatasetSummary, summarise_folder, summarise_manifest

__all__ = [
    "LAYOUTS", "MASK_COLUMNS", "QUADRANTS", "Box", "DatasetLayout", "DatasetSummary", "Manifest",
    "ManifestError", "background_roi", "boxes_from_mask", "detect_layout", "external_split",
    "grouped_kfold", "grouped_split", "lesion_roi", "load_manifest", "mask_box",
    "patients_on_several_sides", "quadrant", "read_lesion_table", "square_crop", "summarise_folder",
    "summarise_manifest",
]
