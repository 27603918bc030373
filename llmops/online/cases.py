"""A stored generation as what scorers and datasets read: the last user message, the answer, the messages."""

from __future__ import annotations

import json

from ..models import Span
from ..scorers import Case


def _content(value: object) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [part.get("text") or part.get("content") or "" for part in value if isinstance(part, dict)]
        return "\n".join(str(t) for t in texts if t)
    return "" if value is None else json.dumps(value, ensure_ascii=False)


def messages(stored: str) -> list[dict]:
    """The stored input or output as chat messages (`{"role", "content"}`); a plain text is one message."""
    if not stored:
        return []
    try:
        value = json.loads(stored)
    except ValueError:
        return [{"role": "user", "content": stored}]
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            value = value["messages"]
        elif isinstance(value.get("choices"), list):
            value = [choice.get("message", choice) for choice in value["choices"] if isinstance(choice, dict)]
        else:
            value = [value]
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        return [{"role": "user", "content": stored}]
    out = []
    for item in value:
        if isinstance(item, dict):
            role = str(item.get("role") or "user")
            content = item.get("content", item.get("parts", item.get("text", "")))
            out.append({"role": role, "content": _content(content)})
        else:
            out.append({"role": "user", "content": _content(item)})
    return out


def last_text(stored: str, roles: tuple[str, ...]) -> str:
    """The content of the last message with one of `roles`, else of the last message, else ''."""
    chat = messages(stored)
    for message in reversed(chat):
        if message["role"] in roles:
            return message["content"]
    return chat[-1]["content"] if chat else ""


def span_case(span: Span) -> Case:
    """What a scorer grades: the answer as output, the question as the `input` variable, the figures."""
    return Case(
        output=last_text(span.output, ("assistant", "model", "ai")),
        variables={"input": last_text(span.input, ("user", "human"))},
        latency_ms=span.duration_ms,
        cost=float(span.cost) if span.cost is not None else None,
        input_tokens=span.input_tokens,
        output_tokens=span.output_tokens,
    )
