"""Reading MLOps pages as a person does: the visible text, the messages shown, a chart's data."""

from __future__ import annotations

import html
import json
import re


def text_of(response) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, whitespace collapsed."""
    body = response.content.decode()
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def text_of_html(fragment: str) -> str:
    """The visible text of a piece of HTML."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def json_script(response, element_id: str) -> dict:
    """The JSON of `<script id=element_id type="application/json">` (a chart's figure)."""
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no JSON script #{element_id}"
    return json.loads(match.group(1))


def messages_of(response) -> list[str]:
    """The Django messages shown on the page, as text."""
    return [text_of_html(str(m)) for m in response.context["messages"]] if response.context else []
