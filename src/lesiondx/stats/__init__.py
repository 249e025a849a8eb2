"""Clinical-study statistics for lesiondx.

Conventions: labels are bool or 0/1 (use :func:`binarize_labels` for text labels); a higher
score means the positive class and a case is called positive when ``score >= threshold``
(R pROC ``direction = "<"``). Invalid input raises ``ValueError``. AUC, DeLong CIs and tests
and the Youden cut-off match R pROC 1.18 (see tests/stats/fixtures/make_proc_fixtures.R).
"""

from ._validate import binarize_labels
from .aggregate import aggregate_binary, aggregate_multiclass, softmax
from .binary import (
    BinaryMetrics,
    ConfusionMatrix,
    ProportionCI,
    binary_metrics,
    confusion_matrix,
    metrics_at_threshold,
    metrics_from_confusion,
    wilson_ci,
)
from .bootstrap import BootstrapCI, RocBand, bootstrap_auc, bootstrap_roc_band, bootstrap_statistic, resample_weights
from .calibration import (
    CalibrationCurve,
    HosmerLemeshowResult,
    RecalibrationResult,
    calibration_curve,
    hosmer_lemeshow,
    logistic_recalibration,
)
from .compare import CompareResult, compare_models
from .decision import DecisionCurve, net_benefit
from .delong import (
    AucResult,
    PairedDelongResult,
    UnpairedDelongResult,
    auc_delong,
    delong_paired_test,
    delong_unpaired_test,
)
from .evaluation import EvalSettings, report_from_csv, summary_lines, write_predictions
from .detection import DetectionPRF, detection_prf, greedy_match, iou_matrix
from .levels import LevelSelection, select_levels
from .fusion import FusionResult, LogisticModel, OddsRatio, fit_logistic, fusion_model, univariate_screen
from .multiclass import MulticlassAucResult, one_vs_rest_auc
from .nomogram import NomogramScale, nomogram_scale, plot_nomogram
from .reader_study import ReaderStudyResult, analyse_reader_study
from .readers import (
    KappaResult,
    MannWhitneyResult,
    McNemarResult,
    TimeSummary,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_from_counts,
    mann_whitney,
    mcnemar_test,
    summarize_times,
)
from .report import ReportResult, write_report
from .roc import RocCurve, YoudenResult, apply_threshold, auc_score, proc_thresholds, roc_curve, youden_threshold
from .stratify import bands, stratified_auc_table

__all__ = [
    "AucResult",
    "BinaryMetrics",
    "BootstrapCI",
    "CalibrationCurve",
    "CompareResult",
    "ConfusionMatrix",
    "DecisionCurve",
    "DetectionPRF",
    "EvalSettings",
    "FusionResult",
    "HosmerLemeshowResult",
    "KappaResult",
    "LevelSelection",
    "LogisticModel",
    "MannWhitneyResult",
    "McNemarResult",
    "MulticlassAucResult",
    "NomogramScale",
    "OddsRatio",
    "PairedDelongResult",
    "ProportionCI",
    "ReaderStudyResult",
    "RecalibrationResult",
    "ReportResult",
    "RocBand",
    "RocCurve",
    "TimeSummary",
    "UnpairedDelongResult",
    "YoudenResult",
    "aggregate_binary",
    "aggregate_multiclass",
    "analyse_reader_study",
    "apply_threshold",
    "auc_delong",
    "auc_score",
    "bands",
    "binarize_labels",
    "binary_metrics",
    "bootstrap_auc",
    "bootstrap_roc_band",
    "bootstrap_statistic",
    "calibration_curve",
    "cohen_kappa",
    "compare_models",
    "confusion_matrix",
    "delong_paired_test",
    "delong_unpaired_test",
    "detection_prf",
    "fit_logistic",
    "fleiss_kappa",
    "fleiss_kappa_from_counts",
    "fusion_model",
    "greedy_match",
    "hosmer_lemeshow",
    "iou_matrix",
    "logistic_recalibration",
    "mann_whitney",
    "mcnemar_test",
    "metrics_at_threshold",
    "metrics_from_confusion",
    "net_benefit",
    "nomogram_scale",
    "one_vs_rest_auc",
    "plot_nomogram",
    "proc_thresholds",
    "report_from_csv",
    "resample_weights",
    "roc_curve",
    "select_levels",
    "softmax",
    "stratified_auc_table",
    "summarize_times",
    "summary_lines",
    "univariate_screen",
    "wilson_ci",
    "write_predictions",
    "write_report",
    "youden_threshold",
]
