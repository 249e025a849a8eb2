"""How the ``lesiondx`` command line fails: one line naming the file and the reason, never a traceback.

Every command runs inside :class:`SafeGroup`. An exception that escapes a command becomes ONE line on
stderr and an exit code: 2 for bad input (unreadable or oversized image, bad table, missing column or
file...), 1 for anything else ("internal error ..., rerun with --debug"). ``lesiondx --debug CMD`` (or
``LESIONDX_DEBUG=1``) lets the traceback through instead.

When the message does not already name a file (one of the arguments, or any path it opens with), the line
starts with the command's own path arguments, all of them (read from the command function's frame), so
``predict a.png`` failing inside PIL still says ``a.png: ...`` and ``train --data D --config C`` failing on a
config value says ``D, C: ...``.
"""

from __future__ import annotations

import re
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

MAX_MESSAGE = 400
OPENS_WITH_A_FILE = re.compile(r"^(?=[^\s:]*(?:[/\\]|\.[A-Za-z]\w*:))[^\s:]+: ")  # "runs/x: …", "labels.csv: …"
BAD_INPUT_EXIT, INTERNAL_EXIT = 2, 1


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def print_error(message: str) -> None:
    """``error: MESSAGE`` as one line on stderr (no wrapping at the terminal width)."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()


def bad_input_types() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the input is unusable" (exit code 2)."""
    from zipfile import BadZipFile

    from PIL import Image
    from pydicom.errors import InvalidDicomError

    from lesiondx.config import ConfigError
    from lesiondx.data import ManifestError
    from lesiondx.io import ImageReadError
    from lesiondx.tasks import TaskNotAvailable

    return (ImageReadError, ManifestError, ConfigError, TaskNotAvailable, ValueError, OSError, KeyError,
            Image.DecompressionBombError, InvalidDicomError, BadZipFile, MemoryError)


def _reason(exc: BaseException) -> str:
    from PIL import Image

    if isinstance(exc, Image.DecompressionBombError):
        return f"image too large to decode safely ({exc})".replace(", could be decompression bomb DOS attack.", "")
    if isinstance(exc, KeyError):
        return f"missing column or key {exc}"
    if isinstance(exc, MemoryError):
        return "not enough memory to process this input"
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    text = str(exc).strip()
    return text or type(exc).__name__


def command_paths(exc: BaseException) -> list[str]:
    """Path-valued arguments of the command function (in a lesiondx ``cli.py``) the exception came through."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        in_cli = (frame.f_globals.get("__package__") or "").startswith("lesiondx") and \
            frame.f_code.co_filename.endswith("cli.py")
        if not in_cli or frame.f_code.co_name.startswith(("_", "<")):
            continue
        code = frame.f_code
        found: list[str] = []
        for name in code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]:
            if "out" in name or name == "run_dir":  # where results go, not what was read
                continue
            value = frame.f_locals.get(name)
            values = value if isinstance(value, (list, tuple)) else [value]
            found += [str(v) for v in values if isinstance(v, Path)]
        return found
    return []


def describe(exc: BaseException, command: str | None) -> tuple[str, int]:
    """The one-line message and exit code for an exception that escaped a command."""
    from lesiondx.service.settings import SettingsError
    from lesiondx.tasks import TaskNotAvailable

    about_a_file = not isinstance(exc, (TaskNotAvailable, SettingsError))  # a task name or a setting, not a file
    paths = command_paths(exc) if about_a_file else []
    bad_input = isinstance(exc, bad_input_types())
    reason = _reason(exc) if bad_input else f"internal error ({type(exc).__name__}: {exc})"
    named = bool(OPENS_WITH_A_FILE.match(reason)) or \
        any(p in reason or re.search(rf"(?<![\w.-]){re.escape(Path(p).name)}(?![\w-])", reason) for p in paths)
    where = "" if named else ", ".join(paths)
    message = f"{where}: {reason}" if where else reason
    if not bad_input:
        message += f" in 'lesiondx {command or ''}'".rstrip() + "; rerun with --debug for the traceback"
    return one_line(message), BAD_INPUT_EXIT if bad_input else INTERNAL_EXIT


class SafeGroup(TyperGroup):
    """The root command group: turns any escaping exception into one line + exit code (see module doc)."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            if type(exc).__module__.split(".")[0] in ("typer", "click") or ctx.params.get("debug"):
                raise  # usage errors and exits are typer's; --debug shows the traceback
            message, code = describe(exc, ctx.invoked_subcommand)
            print_error(message)
            raise typer.Exit(code) from None


__all__ = ["SafeGroup", "bad_input_types", "describe", "one_line", "print_error"]
