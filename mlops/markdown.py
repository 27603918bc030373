"""Markdown (descriptions, model cards) rendered safely: CommonMark + tables, raw HTML escaped.

markdown-it-py with `html` off never passes HTML through, and its link validation
drops javascript:, vbscript:, file: and data: (except images) URLs.
"""

from __future__ import annotations

from functools import lru_cache

from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _renderer() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


def render(text: str) -> SafeString:
    return mark_safe(_renderer().render(text or ""))  # noqa: S308 (html disabled: nothing raw passes through)
