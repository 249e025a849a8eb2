"""The README's commands as a newcomer types them: every ``lesiondx`` command it shows (code blocks and the command
table) names a real command and only options that command takes, and the "first research loop" block runs as
written, top to bottom, on the shared AUL data (slow)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from lesiondx.cli import app
from lesiondx_testdata import REPO, SHARED_DATA, shared_dataset

README = (REPO / "README.md").read_text(encoding="utf-8")


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, re.S)


def _commands(block: str) -> list[str]:
    """The block's commands: continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line.split("  #")[0].split(" # ")[0].strip() for line in joined.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _lesiondx_invocations() -> list[str]:
    found = [c[c.index("lesiondx "):] for block in _bash_blocks() for c in _commands(block) if "lesiondx " in c
             and not c.lstrip().startswith(("pip", "curl", "python", "PYTHONPATH"))]
    found += re.findall(r"`(lesiondx (?:[a-z]+ )?[a-z]+ [^`]*)`", README)  # the command table and the text
    return [f for f in found if not f.startswith("lesiondx.")]


def _resolve(words: list[str]) -> tuple[object, list[str]]:
    command = typer.main.get_command(app)  # typer's own (vendored) click classes
    rest = list(words)
    while rest and rest[0] in getattr(command, "commands", {}):
        command = command.commands[rest.pop(0)]
    return command, rest


def test_every_lesiondx_command_in_the_readme_takes_the_options_it_shows():
    invocations = _lesiondx_invocations()
    assert any(i.startswith("lesiondx train --task us-liver --data runs/aul_small/train") for i in invocations)
    wrong = []
    for invocation in invocations:
        words = invocation.replace("[", " ").replace("]", " ").replace("|", " ").split()[1:]
        words = [w for w in words if not w.startswith("--debug")]
        command, rest = _resolve(words)
        if hasattr(command, "commands"):
            wrong.append(f"{invocation}: no such command")
            continue
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        wrong += [f"{invocation}: {w}" for w in rest if w.startswith("--") and w.split("=")[0] not in known]
    assert wrong == []


def test_the_python_api_example_runs_from_the_repository_root(monkeypatch):
    """README's "Python API at a glance" read ``read_study("series/P002")``, a folder that is not there."""
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks
    monkeypatch.chdir(REPO)
    for block in blocks:
        namespace: dict = {}
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 (the README's own example)
    assert namespace["volume"].pixels.shape[0] == 10 and 0 <= namespace["grey"].min() <= namespace["grey"].max() <= 255
    assert set(namespace["split"]) <= {"train", "test"}


@pytest.mark.slow
def test_the_first_research_loop_runs_as_written(tmp_path, monkeypatch):
    """About 1 minute on one core: split → summary → train (tiny config) → evaluate → report → predict, each
    command exactly as the README shows it, run from a scratch folder (``../shared/data`` and ``examples/``
    pointed at the real ones)."""
    shared_dataset("aul_liver_us")
    block = next(b for b in _bash_blocks() if "examples/split_folder.py" in b)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "examples").symlink_to(REPO / "examples")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    outputs = []
    for command in _commands(block):
        command = command.replace("../shared/data/", f"{SHARED_DATA}/")
        words = shlex.split(command)
        if words[0] == "python":
            done = subprocess.run([sys.executable, *words[1:]], capture_output=True, text=True,
                                  env={"PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout)
        else:
            assert words[0] == "lesiondx", command
            result = CliRunner().invoke(app, words[1:])
            assert result.exit_code == 0, f"{command}\n{result.output}"
            outputs.append(result.output)
    split, summary, trained, evaluated, reported, predicted = outputs
    assert "runs/aul_small/test:" in split and "problem" not in summary
    assert "next: lesiondx evaluate --task us-liver --model runs/us_tiny" in trained
    assert "NOT AN INDEPENDENT TEST" not in evaluated and "wrote runs/us_tiny_eval/:" in evaluated
    assert "at threshold 0.5, fixed before" in reported and "benign_001.jpg:" in predicted
    assert (tmp_path / "runs" / "us_tiny_report" / "report.html").is_file()
    assert (tmp_path / "runs" / "us_tiny_pred" / "benign_001_us_liver.png").is_file()
