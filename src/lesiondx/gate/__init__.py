"""Input gates: before any model runs, check that an input is what the task's model was made and
validated for (modality, photometric interpretation, HU, series geometry, body region, ultrasound).

``check(task, image)`` returns a :class:`GateVerdict`; ``require(task, image, source)`` raises
:class:`InputRefused` for refused inputs and returns the verdict otherwise.
"""

from __future__ import annotations

from pathlib import Path

from lesiondx.io import MedicalImage

from .verdict import Check, GateVerdict, InputRefused, combine


def check(task: str, image: MedicalImage) -> GateVerdict:
    """The verdict of ``task``'s gate (``us-liver``, ``ct-liver``, ``ct-covid``) for ``image``."""
    if task == "ct-covid":
        from .ct_covid import gate
    elif task == "ct-liver":
        from .ct_liver import gate
    elif task == "us-liver":
        from .us_liver import gate
    else:
        raise ValueError(f"no input gate for task {task!r}")
    return gate(image)


def require(task: str, image: MedicalImage, source: str | Path) -> GateVerdict:
    """``check`` that raises :class:`InputRefused` (naming ``source``) when the input is out of scope."""
    verdict = check(task, image)
    if verdict.status == "refused":
        raise InputRefused(source, verdict)
    return verdict




def result_fields(verdicts: list[GateVerdict], warnings: tuple[str, ...] | list[str] = ()) -> dict:
    """The fields every task output carries: ``out_of_scope_flag``, ``validated_on_input``, ``gate``
    (the verdict, or a list of them for several studies) and the readers' ``input_warnings``."""
    flagged = any(v.out_of_scope_flag for v in verdicts)
    gate = verdicts[0].to_dict() if len(verdicts) == 1 else [v.to_dict() for v in verdicts]
    return {"out_of_scope_flag": flagged, "validated_on_input": not flagged, "gate": gate,
            "input_warnings": list(warnings)}


__all__ = ["Check", "GateVerdict", "InputRefused", "check", "combine", "require", "result_fields"]
