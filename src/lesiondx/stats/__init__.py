"""Clinical-study statistics for lesiondx.

Conventions: labels are bool or 0/1 (use :func:`binarize_labels` for text labels); a higher
score means the positive class and a case is called positive when ``score >= threshold``
(R pROC ``direction = "<"``). Invalid input raises ``ValueError``. AUC, DeLong CIs and tests
and the Youden cut-off match R pROC 1.18 (see tests/stats/fixtures/make_proc_fixtures.R).

Names are imported on first use (PEP 562): ``from lesiondx.stats import auc_delong`` imports scipy.stats but
not statsmodels or matplotlib, so a ``predict`` process starts fast.
"""

from __future__ import annotations

from lesiondx._lazy import lazy_names

_WHERE: dict[str, str] = {
    **dict.fromkeys(["binarize_labels"], "_validate"),
    **dict.fromkeys(["aggregate_binary", "aggregate_multiclass", "softmax"], "aggregate"),
    **dict.fromkeys([
        "BinaryMetrics", "ConfusionMatrix", "ProportionCI", "binary_metrics", "confusion_matrix",
        "metrics_at_threshold", "metrics_from_confusion", "wilson_ci"
    ], "binary"),
    **dict.fromkeys([
        "BootstrapCI", "RocBand", "bootstrap_auc", "bootstrap_roc_band", "bootstrap_statistic", "resample_weights"
    ], "bootstrap"),
    **dict.fromkeys([
        "CalibrationCurve", "HosmerLemeshowResult", "RecalibrationResult", "calibration_curve", "hosmer_lemeshow",
        "logistic_recalibration"
    ], "calibration"),
    **dict.fromkeys(["CompareResult", "compare_models"], "compare"),
    **dict.fromkeys(["DecisionCurve", "net_benefit"], "decision"),
    **dict.fromkeys([
        "AucResult", "PairedDelongResult", "UnpairedDelongResult", "auc_delong", "delong_paired_test",
        "delong_unpaired_test"
    ], "delong"),
    **dict.fromkeys(["DetectionPRF", "detection_prf", "greedy_match", "iou_matrix"], "detection"),
    **dict.fromkeys(["EvalSettings", "report_from_csv", "summary_lines", "write_predictions"], "evaluation"),
    **dict.fromkeys([
        "FusionResult", "LogisticModel", "OddsRatio", "fit_logistic", "fusion_model", "univariate_screen"
    ], "fusion"),
    **dict.fromkeys(["LevelSelection", "select_levels"], "levels"),
    **dict.fromkeys(["MulticlassAucResult", "one_vs_rest_auc"], "multiclass"),
    **dict.fromkeys(["NomogramScale", "nomogram_scale", "plot_nomogram"], "nomogram"),
    **dict.fromkeys(["ReaderStudyResult", "analyse_reader_study"], "reader_study"),
    **dict.fromkeys([
        "KappaResult", "MannWhitneyResult", "McNemarResult", "TimeSummary", "cohen_kappa", "fleiss_kappa",
        "fleiss_kappa_from_counts", "mann_whitney", "mcnemar_test", "summarize_times"
    ], "readers"),
    **dict.fromkeys(["ReportResult", "write_report"], "report"),
    **dict.fromkeys([
        "RocCurve", "YoudenResult", "apply_threshold", "auc_score", "proc_thresholds", "roc_curve", "youden_threshold"
    ], "roc"),
    **dict.fromkeys(["bands", "stratified_auc_table"], "stratify"),
}

__all__ = sorted(_WHERE)

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
