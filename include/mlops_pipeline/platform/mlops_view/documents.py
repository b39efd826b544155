"""Markdown documents served as HTML: decision records (kept as Markdown under ``reports/``)
rendered on request with markdown-it (CommonMark, plus tables), raw HTML in them escaped."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from mlops_pipeline.platform.mlops_view.markup import document_head, escape

DOCUMENT_STYLE = "article{max-width:60rem}"


@functools.cache
def _renderer() -> Any:
    from markdown_it import MarkdownIt

    # ``html: False``: a record quotes user input (reasons, approver names) that must not
    # become markup.
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def markdown_html(text: str) -> str:
    return str(_renderer().render(text))


def _title(text: str, fallback: str) -> str:
    heading = next((line for line in text.splitlines() if line.startswith("# ")), "")
    return heading.removeprefix("# ").replace("`", "").strip() or fallback


def render_document(path: Path, relative: str) -> str:
    """The Markdown file ``path`` (``relative`` under ``reports/``, served at
    ``documents/<relative>`` of the use case) as a page, linking back and to the raw file."""
    if path.suffix != ".md":
        raise FileNotFoundError(path.name)
    text = path.read_text(encoding="utf-8")
    depth = "../" * (relative.count("/") + 1)
    raw_url = f"reports/{relative}"
    return "".join(
        [
            document_head(_title(text, path.stem), DOCUMENT_STYLE),
            f"<p class='muted'><a href='{depth}'>Back to the use case</a> · "
            f"<a href='{depth}{escape(raw_url)}'>Markdown</a></p>",
            f"<article class='markdown'>{markdown_html(text)}</article>",
            "</body></html>",
        ]
    )
