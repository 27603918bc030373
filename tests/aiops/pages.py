"""Reading AIOps pages as a person does: the visible text, and the chart data handed to portal.js."""

from __future__ import annotations

import html
import json
import re


def text_of(response) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, whitespace collapsed."""
    body = response.content.decode()
    body = re.sub(r"<script\b.*?</script>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def json_script(response, element_id: str) -> dict:
    """The JSON of `<script id=element_id type="application/json">` (a chart's figure)."""
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no JSON script #{element_id}"
    return json.loads(match.group(1))
