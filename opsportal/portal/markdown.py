"""Markdown rendered safely, for every app: CommonMark + tables and strikethrough, raw HTML escaped.

Used for MLOps model descriptions and model cards and for AIOps incident comments.
markdown-it-py with `html` off never passes HTML through (a `<script>` is shown as text), and
its link validation drops javascript:, vbscript:, file: and data: (except images) URLs.
`breaks=True` keeps single line breaks, as comment boxes do (GitHub-style comments).
"""

from __future__ import annotations

from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@lru_cache(maxsize=2)
def _renderer(breaks: bool) -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": breaks}).enable(
        ["table", "strikethrough"]
    )


def render(text: str, *, breaks: bool = False) -> SafeString:
    """`text` as HTML, safe to put in a page as it is."""
    return mark_safe(_renderer(breaks).render(text or ""))  # noqa: S308 (html disabled: nothing raw passes through)
