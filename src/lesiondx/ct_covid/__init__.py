"""COVID-19 chest CT: lung field, UNet++ infection segmentation and a consecutive-slice patient rule."""

from .config import CovidConfig
from .lung import crop_box, lung_field
from .pipeline import SeriesResult, SliceResult, analyse_series
from .rule import PatientDecision, consecutive_rule, longest_run, window_score

__all__ = [
    "CovidConfig", "PatientDecision", "SeriesResult", "SliceResult", "analyse_series", "consecutive_rule", "crop_box",
    "longest_run", "lung_field", "window_score",
]
