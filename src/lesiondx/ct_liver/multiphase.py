"""Multiphase aggregation: one patient result from lesion-crop probabilities over all slices and
contrast phases, and per-phase / combined metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from lesiondx.stats import aggregate_multiclass, one_vs_rest_auc


def patient_probabilities(table: pd.DataFrame, classes: Sequence[str], *, group: str = "patient_id",
                          label: str | None = None) -> pd.DataFrame:
    """One row per ``group``: softmax over classes of the mean log-probability over all its rows
    (slices × phases), i.e. the normalised geometric mean of the probabilities — the "softmax of mean"
    rule applied to log-probabilities, which keeps the values interpretable. Adds ``predicted``."""
    logp = np.log(np.clip(table[list(classes)].to_numpy(dtype=float), 1e-7, 1.0))
    frame = pd.DataFrame(logp, columns=list(classes)).assign(**{group: table[group].to_numpy()})
    if label:
        frame[label] = table[label].to_numpy()
    return aggregate_multiclass(frame, group, list(classes), label_col=label, method="softmax_mean")


def _metrics(y: np.ndarray, probs: np.ndarray, classes: Sequence[str], groups: np.ndarray | None) -> dict:
    present = [c for c in classes if (y == c).sum() >= 2]
    out: dict = {"n": int(len(y)), "accuracy": float(np.mean(np.asarray(classes)[probs.argmax(1)] == y))}
    if len(present) == len(classes) and len(y) > len(classes) * 2:
        auc = one_vs_rest_auc(y, probs, list(classes), groups=groups, n_boot=200)
        out["macro_auc"] = {"auc": auc.macro.estimate, "ci": [auc.macro.ci_low, auc.macro.ci_high]}
        out["auc"] = {str(c): {"auc": r.auc, "ci": [r.ci_low, r.ci_high]} for c, r in auc.per_class.items()}
    return out


def multiphase_metrics(table: pd.DataFrame, classes: Sequence[str], *, label: str = "label",
                       phase: str = "phase", group: str = "patient_id") -> dict:
    """Per-phase patient-level metrics (accuracy; one-vs-rest AUCs with CIs when every class has ≥ 2
    patients) and the same for the combined all-phase patient result."""
    result: dict = {"per_phase": {}, "classes": list(classes)}
    phases = sorted(table[phase].dropna().unique()) if phase in table.columns else []
    for ph in phases:
        agg = patient_probabilities(table[table[phase] == ph], classes, group=group, label=label)
        result["per_phase"][str(ph)] = _metrics(agg[label].to_numpy(), agg[list(classes)].to_numpy(), classes, None)
    agg = patient_probabilities(table, classes, group=group, label=label)
    result["combined"] = _metrics(agg[label].to_numpy(), agg[list(classes)].to_numpy(), classes, None)
    return result
