"""Per-stage wall-clock seconds of one ct-liver ``predict`` call (the JSON's ``stage_seconds``); each stage
entered is also a progress report (:func:`lesiondx.progress.report`: the service's progress line)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

from lesiondx.progress import report

STAGES = ("decode", "phases", "liver", "candidates", "outputs", "alignment", "characterisation")


@dataclass(frozen=True)
class StageTimes:
    """Seconds per stage, all inputs (phases) of one call together; ``other`` = the rest of ``total``."""

    decode: float  # reading and decoding the files, input gate, HU / export window
    phases: float  # phase identification (tags, acquisition times, aorta / portal-vein HU)
    liver: float  # liver mask
    candidates: float  # lesion candidates (rules) or the learned detector
    outputs: float  # liver filter, locations, classifier (lilnet), overlay / CAM PNGs
    alignment: float  # translation of each phase onto the first
    characterisation: float  # lesion outlines, per-phase HU, features and evidence
    total: float
    other: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 2) for k, v in asdict(self).items()}


@dataclass
class Stopwatch:
    """Accumulates wall-clock seconds per stage name (one of ``STAGES``); ``series`` (the input being read) and
    ``done`` / ``total`` (inputs finished / given) go with each stage's progress report."""

    start: float = field(default_factory=time.perf_counter)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    series: str = ""
    done: int = 0
    total: int | None = None

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if name not in self.seconds:
            raise ValueError(f"unknown stage {name!r}; one of {', '.join(STAGES)}")
        report(f"{self.series}: {name}" if self.series else name, self.done, self.total)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0

    def times(self) -> StageTimes:
        total = time.perf_counter() - self.start
        return StageTimes(**self.seconds, total=total, other=max(0.0, total - sum(self.seconds.values())))
