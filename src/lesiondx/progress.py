"""Progress for slow loops: a Rich bar on a terminal, plain log lines in batch jobs.

When stderr is not a terminal (``nohup``, a scheduler's log file, CI), a loop that has already run for
``QUIET_SECONDS`` prints one line at each further 10 % of its items, so a long training run shows where
it is; quick loops print nothing, unless no line came for ``HEARTBEAT_SECONDS`` (a phase of many short loops,
such as training epochs, then still prints a line about every half minute).

A service job can watch any loop: inside ``with reporting(sink):`` every :func:`track` item and every
:func:`report` call goes to ``sink(stage, done, total)`` (the service writes it to the job's progress file).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

T = TypeVar("T")
console = Console(stderr=True)
QUIET_SECONDS = 10.0  # batch mode: no lines for loops shorter than this (s)...
HEARTBEAT_SECONDS = 30.0  # ...unless no line was printed for this long (s): many short loops (epochs) still show
_last_line = [time.monotonic()]  # when batch mode last printed a progress line (time.monotonic, s)
Sink = Callable[[str, int, "int | None"], None]
_sink: ContextVar[Sink | None] = ContextVar("lesiondx_progress_sink", default=None)


def report(stage: str, done: int, total: int | None = None) -> None:
    """Tell the current :func:`reporting` sink (if any) that ``done`` of ``total`` items of ``stage`` are done."""
    sink = _sink.get()
    if sink is not None:
        try:
            sink(stage, done, total)
        except Exception:  # progress must never break the work it describes
            pass


@contextmanager
def reporting(sink: Sink) -> Iterator[None]:
    """Send :func:`report` and :func:`track` progress in this thread/context to ``sink``."""
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


def _reported(items: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    report(description, 0, total)
    for done, item in enumerate(items, 1):
        yield item
        report(description, done, total)


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Yield from ``items`` with a progress bar on stderr, or plain progress lines when stderr is not a TTY."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    if _sink.get() is not None:
        items = _reported(items, description, total)
    if not sys.stderr.isatty():
        yield from _log_lines(items, description, total)
        return
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    )
    with progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def _log_lines(items: Iterable[T], description: str, total: int | None) -> Iterator[T]:
    """``description: done/total (elapsed, ~remaining)`` on stderr at each 10 % step after ``QUIET_SECONDS``."""
    start = time.monotonic()
    next_step = 0.1
    for done, item in enumerate(items, 1):
        yield item
        now = time.monotonic()
        elapsed = now - start
        quiet = elapsed < QUIET_SECONDS and now - _last_line[0] < HEARTBEAT_SECONDS
        if not total or quiet or done / total < next_step:
            continue
        _last_line[0] = now
        while next_step <= done / total:
            next_step += 0.1
        left = elapsed * (total - done) / done
        print(f"{description}: {done}/{total} ({elapsed:.0f} s, ~{left:.0f} s left)", file=sys.stderr, flush=True)
