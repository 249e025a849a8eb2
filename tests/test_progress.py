"""Batch-mode progress lines: long loops report, short ones stay quiet, every item is yielded."""

from __future__ import annotations

import lesiondx.progress as progress


def test_batch_mode_prints_steps_only_for_long_loops(monkeypatch, capsys):
    clock = iter(range(0, 10_000, 2))  # every call to the clock advances 2 s
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    items = list(progress.track(range(50), "caching crops"))  # stderr is captured: not a TTY
    assert items == list(range(50))
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1].startswith("caching crops: 50/50")
    assert 5 <= len(lines) <= 10 and all("s left" in line for line in lines)

    monkeypatch.setattr(progress.time, "monotonic", lambda: 0.0)  # a quick loop
    assert list(progress.track([1, 2, 3], "quick")) == [1, 2, 3]
    assert capsys.readouterr().err == ""


def test_batch_mode_prints_a_line_for_short_loops_when_none_came_for_half_a_minute(monkeypatch, capsys):
    """Was: 8 segmenter epochs of a few seconds each printed nothing for minutes in a log file."""
    monkeypatch.setattr(progress.time, "monotonic", lambda: 1000.0)
    monkeypatch.setattr(progress, "_last_line", [1000.0 - progress.HEARTBEAT_SECONDS])
    assert list(progress.track(range(4), "segmenter epoch 3/8")) == [0, 1, 2, 3]
    assert capsys.readouterr().err.splitlines() == ["segmenter epoch 3/8: 1/4 (0 s, ~0 s left)"]
    assert list(progress.track(range(4), "segmenter epoch 4/8")) == [0, 1, 2, 3]  # a line just came: quiet
    assert capsys.readouterr().err == ""
