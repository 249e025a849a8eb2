"""Rebuild BENCHMARKS.md from benchmarks/_summary.md and the per-part benchmarks/*.md files.

Usage: python benchmarks/assemble.py   (from the repository root)
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
PARTS = (("us-liver", "us_liver.md"), ("ct-covid", "ct_covid.md"), ("ct-liver", "ct_liver.md"), ("service", "service.md"), ("runtime", "runtime.md"))


def demote(text: str) -> str:
    """Headings one level down (outside code fences); the part's own first heading becomes bold text."""
    lines, fenced, first = [], False, True
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and line.startswith("#"):
            if first:
                line, first = f"**{line.lstrip('# ').strip()}**", False
            else:
                line = "#" + line
        lines.append(line)
    return "\n".join(lines)


def main() -> None:
    out = [(HERE / "_summary.md").read_text().rstrip()]
    for anchor, name in PARTS:
        out.append(f"\n\n## {anchor}\n\nFrom `benchmarks/{name}`.\n\n{demote((HERE / name).read_text()).strip()}")
    (HERE.parent / "BENCHMARKS.md").write_text("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
