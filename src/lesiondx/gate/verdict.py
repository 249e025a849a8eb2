"""The gate's result and the error raised when an input is out of scope."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lesiondx.io.errors import ImageReadError

Status = Literal["ok", "flagged", "refused"]
_RANK = {"ok": 0, "flagged": 1, "refused": 2}


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``status``, the measured ``value`` and a ``reason`` when not ok."""

    name: str
    status: Status
    value: Any = None
    reason: str = ""


@dataclass(frozen=True)
class GateVerdict:
    """Whether an input is what a task's model was made and validated for.

    ``refused``: out of scope, no model runs. ``flagged``: the model runs, but the result says it is
    outside what the model was validated on (``out_of_scope_flag``). ``checks`` holds every measured value.
    """

    task: str
    status: Status
    reasons: tuple[str, ...]
    checks: dict[str, Any] = field(default_factory=dict)

    @property
    def out_of_scope_flag(self) -> bool:
        return self.status != "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON for the task output: ``status``, ``reasons``, ``checks``, ``out_of_scope_flag``,
        ``validated_on_input`` (False when flagged)."""
        return {"status": self.status, "out_of_scope_flag": self.out_of_scope_flag,
                "validated_on_input": self.status == "ok", "reasons": list(self.reasons), "checks": self.checks}


def combine(task: str, checks: list[Check]) -> GateVerdict:
    """The worst status of ``checks`` and the reasons of every check that is not ok."""
    status: Status = "ok"
    for c in checks:
        if _RANK[c.status] > _RANK[status]:
            status = c.status
    reasons = tuple(c.reason for c in checks if c.status != "ok" and c.reason)
    table = {c.name: ({"status": c.status, "value": c.value} | ({"note": c.reason} if c.reason else {})) for c in checks}
    return GateVerdict(task, status, reasons, table)


class InputRefused(ImageReadError):
    """The input gate refused an input as out of scope for a task (no model output is produced)."""

    def __init__(self, path: str | Path, verdict: GateVerdict) -> None:
        self.verdict = verdict
        super().__init__(path, f"refused for task {verdict.task}: " + "; ".join(verdict.reasons))
