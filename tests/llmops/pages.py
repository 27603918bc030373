"""Reading LLMOps pages in tests: their visible text, their chart data, and the run form's POST."""

from __future__ import annotations

import html
import json
import re


def text_of(response) -> str:
    """The page's visible text, roughly: tags removed, entities decoded, whitespace collapsed."""
    body = response.content.decode()
    body = re.sub(r"<script\b.*?</script>", " ", body, flags=re.S)
    body = re.sub(r"<style\b.*?</style>", " ", body, flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def text_of_fragment(fragment: str) -> str:
    """The visible text of a piece of HTML."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def json_script(response, element_id: str) -> dict:
    """The JSON of a page's `<script id=... type="application/json">` (a chart's figure, say)."""
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', response.content.decode())
    assert match, f"no JSON script #{element_id}"
    return json.loads(match.group(1))


def run_form_data(dataset, versions, models, scorers: list[dict], **extra) -> dict:
    """The new-run form's POST: the dataset, versions and models chosen, one scorer row per spec."""
    data = {
        "dataset": dataset.pk,
        "prompt_versions": [v.pk for v in versions],
        "models": [m.pk for m in models],
        "scorers-TOTAL_FORMS": str(len(scorers)),
        "scorers-INITIAL_FORMS": "0",
        **extra,
    }
    for index, spec in enumerate(scorers):
        data[f"scorers-{index}-type"] = spec["type"]
        data[f"scorers-{index}-config"] = json.dumps(spec.get("config", {}))
        data[f"scorers-{index}-weight"] = str(spec.get("weight", 1))
        if spec.get("threshold") is not None:
            data[f"scorers-{index}-threshold"] = str(spec["threshold"])
        if spec.get("negate"):
            data[f"scorers-{index}-negate"] = "on"
    return data
