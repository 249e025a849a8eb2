"""The shipped models' cards (``models/<task>/MODEL_CARD.md``) as web pages (``/models/<task>``), so the study page
can say what a model was trained and validated on. A small Markdown subset is rendered (headings, paragraphs,
lists, tables, fenced code blocks, ``code``, **bold**; links become their text: no page here points off the machine)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from jinja2 import Environment

TASKS = ("us-liver", "ct-covid", "ct-liver")
CARDS = (*TASKS, "gate")  # the input gate's raster modality probe has a card too (the task cards point to it)
CARD_MENTION = re.compile(r"<code>models/(" + "|".join(map(re.escape, CARDS)) + r")/MODEL_CARD\.md</code>")
ITEM = re.compile(r"^\s*([-*]|\d+\.)\s+")  # a list item's marker
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)  # a fenced code block (its lines kept as written)


def card_path(task: str, model: str = "default") -> Path | None:
    """The card of the shipped model of ``task`` (``$LESIONDX_MODELS/<task>`` or ``<repo>/models/<task>``); None for
    another model (``LESIONDX_MODEL``), whose card this service does not know, or when the file is missing."""
    if task not in CARDS or model != "default":
        return None
    from lesiondx.runtime import shipped_model_dir

    path = shipped_model_dir(task) / "MODEL_CARD.md"
    return path if path.is_file() else None


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", out)  # links: their text only
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = CARD_MENTION.sub(r'<a href="/models/\1">\g<0></a>', out)  # another card: its page here
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _table(rows: list[str]) -> str:
    cells = [[c.strip() for c in r.strip().strip("|").split("|")] for r in rows]
    body = [r for r in cells[1:] if not all(re.fullmatch(r":?-{2,}:?", c) for c in r)]
    head = "".join(f"<th>{_inline(c)}</th>" for c in cells[0])
    rows_html = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody></table>"


def markdown_html(text: str) -> str:
    """HTML for the Markdown subset of the model cards (every text escaped); a fenced code block becomes
    ``<pre><code>`` with its line breaks, not a paragraph."""
    pieces = FENCE.split(text.strip())  # even: Markdown, odd: code
    return "\n".join(_blocks_html(piece) if i % 2 == 0 else _code_html(piece)
                     for i, piece in enumerate(pieces) if piece.strip())


def _code_html(code: str) -> str:
    return f"<pre><code>{html.escape(code.rstrip(), quote=False)}</code></pre>"


def _blocks_html(text: str) -> str:
    blocks: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if lines[0].startswith("#"):
            level = min(len(lines[0]) - len(lines[0].lstrip("#")) + 1, 4)
            blocks.append(f"<h{level}>{_inline(lines[0].lstrip('#').strip())}</h{level}>")
            lines = lines[1:]
        if not lines:
            continue
        if all(line.lstrip().startswith("|") for line in lines):
            blocks.append(_table(lines))
        elif re.match(r"\s*([-*]|\d+\.)\s", lines[0]):
            items = [ITEM.sub("", i) for i in re.split(r"\n(?=\s*(?:[-*]|\d+\.)\s)", "\n".join(lines))]
            blocks.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
        else:
            blocks.append(f"<p>{_inline(' '.join(line.strip() for line in lines))}</p>")
    return "\n".join(blocks)


def render_cards(env: Environment, model: str = "default") -> dict[str, str]:
    """``{"card-<task>": page}`` for every card that is known (the tasks' and the gate's; template
    ``model_card.html``)."""
    template = env.get_template("model_card.html")
    pages = {}
    for task in CARDS:
        path = card_path(task, model)
        if path is not None:
            pages[f"card-{task}"] = template.render(task=task, body=markdown_html(path.read_text(encoding="utf-8")))
    return pages
