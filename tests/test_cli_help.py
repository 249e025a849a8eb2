"""Every ``--help`` text shows what its author wrote: rich markup (on in typer) swallowed any ``[word]``, so
``lesiondx report --help`` hid its defaults ``[label]``, ``[score]``, ``[patient_id]``, ``[mean]`` and
``evaluate --help`` said "needs lesiondx" for "needs lesiondx[train]"."""

from __future__ import annotations

import re

import click
import typer
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx_testdata import REPO

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


def test_help_paragraphs_of_cli_commands_are_not_broken_mid_sentence():
    """train/evaluate/data summary took their help from docstrings whose source line breaks showed as breaks
    ("the run directory gets checkpoint, config,\\n data hash and curves. Every listed\\n file is opened")."""
    broken = [" ".join(path) for path, command in _commands(typer.main.get_command(app))
              if getattr(command, "callback", None) is not None and command.callback.__module__ in ("lesiondx.cli", "lesiondx.stats.cli")
              and any("\n" in paragraph.strip() for paragraph in (command.help or "").split("\n\n"))]
    assert broken == []


def test_train_help_names_config_classes_that_exist_and_a_config_that_loads():
    import importlib

    from lesiondx.us_liver.config import load_us_config

    text = typer.main.get_command(app).commands["train"].help
    classes = re.findall(r"lesiondx\.(\w+)\.config\.(\w+)", text)
    assert len(classes) == 3
    for package, name in classes:
        assert hasattr(importlib.import_module(f"lesiondx.{package}.config"), name)
    assert "examples/tiny_us_liver.yaml" in text
    assert load_us_config(REPO / "examples" / "tiny_us_liver.yaml").folds == 3
