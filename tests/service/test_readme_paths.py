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
