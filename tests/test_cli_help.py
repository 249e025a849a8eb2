"""Every ``--help`` text shows what its author wrote: rich markup (on in typer) swallowed any ``[word]``, so
``lesiondx report --help`` hid its defaults ``[label]``, ``[score]``, ``[patient_id]``, ``[mean]`` and
``evaluate --help`` said "needs lesiondx" for "needs lesiondx[train]"."""

from __future__ import annotations

import re

import click
import typer
from typer.testing import CliRunner

from lesiondx.cli import app

MARKUP = re.compile(r"(?<!\\)\[[A-Za-z_/#@][^\]]*\]")  # what rich reads as a style tag and drops


def _commands(group: click.Command, path: tuple[str, ...] = ()):
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_text_loses_words_to_rich_markup():
    lost = [f"{' '.join(path)} {param.name}: {param.help!r}"
            for path, command in _commands(typer.main.get_command(app))
            for param in command.params if getattr(param, "help", None) and MARKUP.search(param.help)]
    assert lost == []


def test_report_and_predict_help_say_units_and_defaults():
    runner = CliRunner()
    said = {cmd: re.sub(r"[\s│]+", " ", runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "250"}).output)
            for cmd in ("report", "predict", "evaluate")}
    assert "threshold in score units" in said["report"] and "(default: mean)" in said["report"]
    assert "'x,y,w,h' in pixels" in said["predict"] and "needs the train extra of lesiondx" in said["evaluate"]
