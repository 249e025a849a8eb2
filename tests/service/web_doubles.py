"""TEST DOUBLES for the result page (not models): the stub predictor's output with the fields the real tasks add —
an input-gate verdict and OOD score (us-liver), rule-table findings with features that could not be judged
(ct-liver). Every value here is SYNTHETIC. Used as ``LESIONDX_PREDICTOR=web_doubles:flagged_predictor``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lesiondx.io import ImageReadError
from lesiondx.service.testing import stub_predictor

REASON = "SYNTHETIC: colour fraction 0.31 > 0.05 (a Doppler or annotated frame?)"


def _feature(name: str, present: bool | None, reason: str) -> dict[str, Any]:
    return {"name": name, "present": present, "hu": None, "reason": reason}


def _finding(i: int, slices: list[int], water: bool) -> dict[str, Any]:
    need = "could not be judged: needs an arterial phase"
    return {"id": i, "slices": slices, "box": [10, 10, 30, 30],
            "features": [_feature("aphe", None, need), _feature("washout", None, need),
                         _feature("water_density_non_enhancing", water, "SYNTHETIC core 3 HU")],
            "evidence": {"pattern": "cyst" if water else None, "benign_malignant": "benign" if water else None}}


def flagged_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **options: Any) -> dict[str, Any]:
    """us-liver: the stub's result flagged out of scope and out of distribution; ct-covid: decided by a rule, no threshold;
    ct-liver: two findings, no label."""
    result = stub_predictor(task, inputs, out, model, **options)
    if task == "us-liver":
        gate = {"status": "flag", "out_of_scope_flag": True, "validated_on_input": False, "reasons": [REASON]}
        for r in result["results"]:
            r.update(out_of_scope_flag=True, validated_on_input=False, gate=gate,
                     ood={"score": 14.2, "threshold": 10.1, "out_of_distribution": True},
                     heatmap_peak={"x": 3, "y": 4, "inside_roi": False})
        return result
    if task == "ct-covid":  # the patient call comes from the consecutive-slice rule, not a probability threshold
        result["patient"].update(threshold=None, rule={"k_consecutive": 5, "prob_threshold": 0.7, "min_lesion_diameter_mm": 5.0})
    if task == "ct-liver":
        result["patient"].update(label=None, probability=None, threshold=None,
                                 gate={"status": "ok", "reasons": []}, out_of_scope_flag=False, validated_on_input=True)
        result.update(findings=[_finding(1, [2, 4], False), _finding(2, [6, 6], True)], phases=["portal-venous"],
                      evidence={"malignant_patterns": [], "benign_patterns": [{"finding": 2, "pattern": "cyst"}],
                                "indeterminate": [1], "kind": "rule-table evidence, not a probability"})
    return result


def refusing_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **options: Any) -> dict[str, Any]:
    """Refuses every input the way a task's reader refuses a CT series sent to us-liver."""
    raise ImageReadError("series_01", f"{task} reads single image files (JPEG/PNG or ultrasound DICOM), not folders")


def no_call_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **options: Any) -> dict[str, Any]:
    """SYNTHETIC results that make no benign/malignant or normal/COVID-19 call: us-liver finds no focal lesion (its
    lesion probability under the lesion threshold, as the real task reports it); ct-covid calls the series not
    assessable (it covers only part of the lungs)."""
    make = flagged_predictor if task == "ct-covid" else stub_predictor  # ct-covid: decided by its rule
    result = make(task, inputs, out, model, **options)
    if task == "us-liver":
        for r in result["results"]:
            r.update(label="no focal lesion found", probability=None, threshold=None, box=None, p_lesion=0.0067,
                     lesion_found=False, no_lesion_threshold=0.9449)
    if task == "ct-covid":
        gate = {"status": "flag", "out_of_scope_flag": True, "validated_on_input": False,
                "reasons": ["SYNTHETIC: the series covers only part of the lungs"]}
        result["patient"].update(label="not assessable (incomplete series)", probability=0.0, gate=gate,
                                 out_of_scope_flag=True, validated_on_input=False,
                                 caveat="SYNTHETIC: a negative call does not cover the lungs outside the series")
    return result


def card_predictor(task: str, inputs: list[Path], out: Path, model: str = "default", **options: Any) -> dict[str, Any]:
    """The stub's result under a model version other than "test-double", so the page treats it as the shipped model
    and links its card (SYNTHETIC: the numbers are still the stub's)."""
    result = stub_predictor(task, inputs, out, model, **options)
    for r in result.get("results") or [result.get("patient") or {}]:
        r["model_version"] = "SYNTHETIC-stands-for-the-shipped-model"
    return result
