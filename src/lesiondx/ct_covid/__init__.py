"""COVID-19 chest CT: lung field, UNet++ infection segmentation and a consecutive-slice patient rule."""

from .config import CovidConfig
from .lung import crop_box, lung_field
from .pipeline import SeriesResult, SliceResult, analyse_series
from .rule import PatientDecision, RuleSettings, longest_run, patient_rule

__all__ = [
    "CovidConfig", "PatientDecision", "RuleSettings", "SeriesResult", "SliceResult", "analyse_series", "crop_box",
    "longest_run", "lung_field", "patient_rule",
]
