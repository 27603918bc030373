"""A generation's stored input and output read back as chat messages, whatever convention the sender used.

The ingest keeps `input`/`output` as JSON text: a list of messages when the sender gave them (GenAI's
`{"role", "parts": [{"type": "text", "content"}, {"type": "tool_call", ...}]}`, the deprecated and
OpenInference `{"role", "content"}` with `tool_calls`), else the raw value (OpenInference `input.value` is
often the whole request, `{"messages": [...]}`, and `output.value` the whole answer, `{"choices": [...]}`).
A value cut at LLMOPS_TRACE_MAX_IO_CHARS is no longer valid JSON: it is shown as text, marked as cut.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field

ROLES = {"system", "developer", "user", "assistant", "tool", "function", "model"}


@dataclass
class ChatPart:
    """One piece of a message: text, a tool call (name and arguments) or a tool's answer."""

    kind: str
    text: str = ""
    name: str = ""


@dataclass
class ChatMessage:
    role: str
    parts: list[ChatPart] = field(default_factory=list)
    finish_reason: str = ""


@dataclass
class Chat:
    messages: list[ChatMessage]
    truncated: bool = False
    raw: str = ""


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2)


def _parts(message: dict) -> list[ChatPart]:
    parts: list[ChatPart] = []
    content = message.get("content", message.get("parts", message.get("contents")))
    if isinstance(content, list):
        for part in content:
            parts.append(_part(part))
    elif content not in (None, ""):
        parts.append(ChatPart("text", _text(content)))
    for call in message.get("tool_calls") or []:
        function = call.get("function", call.get("tool_call.function", call)) if isinstance(call, dict) else {}
        name = function.get("name", "") if isinstance(function, dict) else ""
        arguments = function.get("arguments", "") if isinstance(function, dict) else call
        parts.append(ChatPart("tool_call", _text(arguments), name=_text(name)))
    return parts


def _part(part: object) -> ChatPart:
    if not isinstance(part, dict):
        return ChatPart("text", _text(part))
    kind = str(part.get("type", part.get("message_content.type", "text")))
    if kind == "tool_call":
        return ChatPart("tool_call", _text(part.get("arguments")), name=_text(part.get("name")))
    if kind == "tool_call_response":
        return ChatPart("tool_result", _text(part.get("response", part.get("result"))))
    text = part.get("content", part.get("text", part.get("message_content.text")))
    if text is None:
        return ChatPart(kind, _text(part))
    return ChatPart("text", _text(text))


def _message(value: object, default_role: str) -> ChatMessage:
    if not isinstance(value, dict):
        return ChatMessage(default_role, [ChatPart("text", _text(value))])
    inner = value.get("message") if isinstance(value.get("message"), dict) else value
    role = str(inner.get("role") or default_role)
    return ChatMessage(role, _parts(inner), finish_reason=_text(value.get("finish_reason", "")))


def _messages(value: object, default_role: str) -> list[ChatMessage]:
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            return [_message(m, default_role) for m in value["messages"]]
        if isinstance(value.get("choices"), list):
            return [_message(choice, default_role) for choice in value["choices"]]
        if "role" in value or "content" in value or "parts" in value:
            return [_message(value, default_role)]
        return [ChatMessage(default_role, [ChatPart("text", _text(value))])]
    if isinstance(value, list):
        return [_message(item, default_role) for item in value]
    if value in (None, ""):
        return []
    return [ChatMessage(default_role, [ChatPart("text", _text(value))])]


def parse_chat(stored: str, truncated: bool, default_role: str) -> Chat:
    """The messages of a stored input or output; text that is not JSON (or was cut) becomes one message."""
    if not stored:
        return Chat(messages=[], truncated=truncated)
    try:
        value = json.loads(stored)
    except ValueError:
        return Chat(messages=[ChatMessage(default_role, [ChatPart("text", stored)])], truncated=truncated, raw=stored)
    if isinstance(value, str):
        # The raw value stored as a JSON string may itself hold JSON (a request body sent as text).
        with contextlib.suppress(ValueError):
            value = json.loads(value)
    return Chat(messages=_messages(value, default_role), truncated=truncated, raw=stored)


def role_class(role: str) -> str:
    """The CSS class of a message bubble: the user's on one side, the model's on the other."""
    role = role.lower()
    if role in ("assistant", "model", "output"):
        return "chat-assistant"
    if role in ("system", "developer"):
        return "chat-system"
    if role in ("tool", "function"):
        return "chat-tool"
    return "chat-user"
