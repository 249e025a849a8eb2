"""Every path the README names resolves: repository files and images exist, web paths answer (not 404)."""

from __future__ import annotations

import re

from service_helpers import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
TOP = ("examples/", "models/", "scripts/", "docs/", "src/", "tests/", "benchmarks/")


def _repo_paths() -> set[str]:
    links = set(re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", README))
    ticked = {t.split()[0] for t in re.findall(r"`([^`\n]+)`", README)}
    ticked |= set(re.findall(r"(?:^|\s)((?:examples|docs|scripts)/[\w./-]+)", README))
    return {p.rstrip(".,:") for p in links | ticked
            if p.startswith(TOP) and not any(c in p for c in "…*<>$")}


def _web_paths() -> set[tuple[str, str]]:
    """(method, path) of the README's web paths without placeholders (``ID``, ``N``)."""
    found = re.findall(r"`(?:(GET|POST) )?(/(?:api/)?[a-z][\w/.-]*)`", README)
    found += re.findall(r"(?:\s|`)(GET|POST) (/api/[a-z][\w/.-]*)", README)
    return {(m or "GET", p) for m, p in found if not re.search(r"[A-Z]", p)}


def test_readme_files_exist():
    paths = _repo_paths()
    assert {"docs/screenshots/studies.png", "scripts/screenshots.py"} <= paths  # the check sees them
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert missing == [], missing


def test_readme_web_paths_answer(client):
    paths = _web_paths()
    assert {("GET", "/reader"), ("GET", "/docs"), ("GET", "/api/reader/summary")} <= paths
    assert ("GET", "/readers") not in paths  # the old wrong name
    broken = {p: client.request(m, p).status_code for m, p in sorted(paths)}
    assert {p: c for p, c in broken.items() if c == 404} == {}, broken


def _settings_rows() -> dict[str, str]:
    """Each ``LESIONDX_*`` name in a table row of the README's "Service settings" section → that row."""
    section = README.split("## Service settings", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, str] = {}
    for line in section.splitlines():
        if line.startswith("| `LESIONDX_") or line.startswith("| `--"):
            for name in re.findall(r"LESIONDX_[A-Z0-9_]+", line.split(" | ")[0]):
                rows.setdefault(name, line)
    return rows


def _variables_read(*folders: str) -> set[str]:
    """Every ``LESIONDX_*`` name the sources under ``folders`` (or files) mention."""
    names: set[str] = set()
    for folder in folders:
        path = ROOT / "src/lesiondx" / folder
        for source in [path] if path.is_file() else sorted(path.rglob("*.py")):
            names |= set(re.findall(r"LESIONDX_[A-Z0-9_]+", source.read_text(encoding="utf-8")))
    return names


def test_every_service_and_io_variable_has_a_settings_row():
    """A variable the service settings or the readers read is in the README's settings table (a new one cannot go
    undocumented)."""
    rows = _settings_rows()
    read = _variables_read("service/settings.py", "io")
    assert {"LESIONDX_MAX_SERIES_PIXELS", "LESIONDX_STOP_GRACE_S", "LESIONDX_TOKEN"} <= read  # the scan sees them
    assert sorted(read - set(rows)) == []


def test_every_variable_the_sources_read_is_in_the_readme():
    """$LESIONDX_MODELS, _THREADS and the weight-file variables were read but written nowhere a user would look."""
    not_settings = {"LESIONDX_AI",  # the SEG's content label, not a variable
                    "LESIONDX_STUB_DELAY_S", "LESIONDX_STUB_SLICE_DELAY_S"}  # test doubles (service/testing.py)
    read = _variables_read(".") - not_settings
    assert {"LESIONDX_MODELS", "LESIONDX_THREADS", "LESIONDX_RESNET"} <= read  # the scan sees them
    assert sorted(name for name in read if name not in README) == []


NUMBER = r"\d+(?:\.\d+)?(?:e\d+)?"
NUMBERS = rf"{NUMBER}(?: ?[a-zA-Z]+)?(?: / {NUMBER}(?: ?[a-zA-Z]+)?)*"  # "200 / 100 MB", "600 s / 3072 MB"


def _renderings(value: float) -> set[str]:
    """How the README may write a default: ``30``, ``0.5``, ``50e6``."""
    out = {f"{value:g}"}
    if value >= 1e6 and value % 1e6 == 0:
        out.add(f"{value / 1e6:g}e6")
    return out


def test_settings_rows_give_the_defaults_the_code_uses():
    """Every number setting's row states the default the service really uses (``Settings`` and the readers)."""
    from dataclasses import MISSING, fields

    from lesiondx.io import raster
    from lesiondx.service.settings import _NUMBERS, Settings

    defaults = {f.name: f.default for f in fields(Settings) if f.default is not MISSING}
    expected = {env: defaults[attr] / scale for attr, env, _, _, scale in _NUMBERS}
    expected["LESIONDX_MAX_SERIES_PIXELS"] = raster.DEFAULT_MAX_SERIES_PIXELS
    expected["LESIONDX_MAX_PIXELS"] = raster.DEFAULT_MAX_PIXELS
    rows = _settings_rows()
    wrong = {}
    for env, value in expected.items():
        row = rows.get(env, "")
        cells = row.split(" | ", 1)[-1]
        names = re.findall(r"LESIONDX_[A-Z0-9_]+", row.split(" | ")[0])
        # a row of several variables ("A / B"): its defaults in the same order, after "default"
        said = [n for run in re.findall(rf"defaults? ({NUMBERS})", cells) for n in re.findall(NUMBER, run)]
        position = names.index(env) if env in names else -1
        if not said or position < 0 or said[min(position, len(said) - 1)] not in _renderings(value):
            wrong[env] = (value, said)
    assert wrong == {}, wrong
