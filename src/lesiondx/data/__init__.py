"""Dataset folders as manifests, patient-grouped splits, and ROIs from masks.

Names are imported on first use (PEP 562): ``from lesiondx.data import mask_box`` does not import
scikit-learn or pandas.
"""

from __future__ import annotations

from lesiondx._lazy import lazy_names

_WHERE: dict[str, str] = {
    **dict.fromkeys(["LAYOUTS", "DatasetLayout", "detect_layout", "read_lesion_table"], "layouts"),
    **dict.fromkeys(["MASK_COLUMNS", "Manifest", "ManifestError", "as_manifest", "load_manifest"], "manifest"),
    **dict.fromkeys(["BadRow", "BadRowsError", "Screened", "check_training_rows", "no_rows_left",
                     "require_columns", "require_known_labels", "require_one_row_per_image", "require_task_layout",
                     "screen_rows"],
                    "badrows"),
    **dict.fromkeys([
        "QUADRANTS", "Box", "background_roi", "boxes_from_mask", "disk_closing", "lesion_roi", "mask_box", "quadrant", "square_crop"
    ], "rois"),
    **dict.fromkeys(["TRAINING_FILES", "SeenRows", "data_hash", "file_sha256", "image_roles", "lead_lines", "read_training_files",
                     "report_notes", "seen_in_training", "write_training_files"], "provenance"),
    **dict.fromkeys(["external_split", "grouped_kfold", "grouped_split", "patients_on_several_sides",
                     "require_patients_per_label"], "splits"),
    **dict.fromkeys(["DatasetSummary", "summarise_folder", "summarise_manifest"], "summary"),
    **dict.fromkeys(["TableError", "read_table"], "tables"),
}

__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_names(__name__, _WHERE)
