"""The diagnostic tasks and where they live; the CLI and the service dispatch through here.

Each task module (``lesiondx.<package>.task``) provides::

    train(data: Path, out: Path, config: Path | None, skip_bad: bool = False) -> Path   # the run directory
    evaluate(model: str, data: Path, out: Path, strict: bool = False) -> dict           # metrics.json content
    predict(inputs: list[Path], model: str, out: Path | None, **options) -> dict
"""

from __future__ import annotations

import importlib
from types import ModuleType

TASK_MODULES: dict[str, str] = {
    "us-liver": "lesiondx.us_liver.task",
    "ct-liver": "lesiondx.ct_liver.task",
    "ct-covid": "lesiondx.ct_covid.task",
}


class TaskNotAvailable(RuntimeError):
    """A task name is unknown, or its package is not built yet."""


def load_task(name: str) -> ModuleType:
    """The module implementing task ``name`` (``us-liver``, ``ct-liver``, ``ct-covid``)."""
    if name not in TASK_MODULES:
        raise TaskNotAvailable(f"unknown task {name!r}; choose one of {', '.join(TASK_MODULES)}")
    try:
        return importlib.import_module(TASK_MODULES[name])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("lesiondx"):
            raise TaskNotAvailable(f"task {name!r} is not available in this build ({exc.name} missing)") from exc
        raise
