"""The attribute conventions of LLM spans, all mapped onto one set of columns (`llmops.models.Span`).

Senders name the same thing differently: OpenTelemetry's GenAI conventions (current, and the deprecated
names still sent by many instrumentations), OpenInference (Arize Phoenix, its instrumentations) and a few
widespread others. `SCALARS` lists, for each column, every attribute that fills it, best first: when a
span carries two names for one thing (a sender in transition sends both), the current one wins.
Messages come as JSON attributes (`gen_ai.input.messages`), as indexed attributes (`gen_ai.prompt.0.role`,
`llm.input_messages.0.message.content`) or as span events (`gen_ai.user.message`, `gen_ai.choice`);
all become a JSON list of messages in `input` / `output`. Request parameters (`gen_ai.request.*`,
`llm.invocation_parameters`) go to `parameters`. Every attribute no column takes is kept in
`attributes`, searchable. The table of docs/llmops.md is `mapping_table()`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -(2**31) < value < 2**31 else None
    if isinstance(value, float) and value.is_integer():
        return _int(int(value))
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return _int(int(value))
    return None


def _float(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _seconds_as_ms(value: object) -> float | None:
    seconds = _float(value)
    return None if seconds is None else seconds * 1000.0


def _lower(value: object) -> str:
    return _text(value).strip().lower()


# column -> [(attribute, converter)], best first.
SCALARS: dict[str, list[tuple[str, Callable[[object], Any]]]] = {
    "operation": [("gen_ai.operation.name", _lower), ("openinference.span.kind", _lower)],
    "provider": [
        ("gen_ai.provider.name", _text), ("gen_ai.system", _text), ("llm.provider", _text), ("llm.system", _text),
    ],
    "response_model": [("gen_ai.response.model", _text), ("llm.model_name", _text), ("llm.response.model", _text)],
    "request_model": [("gen_ai.request.model", _text), ("llm.request.model", _text)],
    "input_tokens": [
        ("gen_ai.usage.input_tokens", _int), ("gen_ai.usage.prompt_tokens", _int), ("llm.token_count.prompt", _int),
        ("llm.usage.prompt_tokens", _int),
    ],
    "output_tokens": [
        ("gen_ai.usage.output_tokens", _int), ("gen_ai.usage.completion_tokens", _int),
        ("llm.token_count.completion", _int), ("llm.usage.completion_tokens", _int),
    ],
    "cache_read_tokens": [
        ("gen_ai.usage.cache_read.input_tokens", _int), ("gen_ai.usage.cache_read_input_tokens", _int),
        ("llm.token_count.prompt_details.cache_read", _int), ("gen_ai.usage.cached_tokens", _int),
    ],
    "cache_write_tokens": [
        ("gen_ai.usage.cache_creation.input_tokens", _int), ("gen_ai.usage.cache_creation_input_tokens", _int),
        ("llm.token_count.prompt_details.cache_write", _int),
    ],
    "reasoning_tokens": [
        ("gen_ai.usage.reasoning.output_tokens", _int), ("gen_ai.usage.reasoning_tokens", _int),
        ("llm.token_count.completion_details.reasoning", _int),
    ],
    "cost": [("gen_ai.usage.cost", _float), ("llm.cost.total", _float)],
    "time_to_first_token_ms": [
        ("gen_ai.response.time_to_first_chunk", _seconds_as_ms), ("gen_ai.server.time_to_first_token", _seconds_as_ms),
    ],
    "session_key": [
        ("gen_ai.conversation.id", _text), ("session.id", _text), ("langfuse.session.id", _text),
    ],
    "user_key": [("user.id", _text), ("enduser.id", _text), ("langfuse.user.id", _text)],
    "prompt_name": [("opsportal.prompt.name", _text)],
    "prompt_version_number": [("opsportal.prompt.version", _int)],
    "input_messages": [("gen_ai.input.messages", None), ("gen_ai.prompt", None)],
    "output_messages": [("gen_ai.output.messages", None), ("gen_ai.completion", None)],
    "system_instructions": [("gen_ai.system_instructions", None)],
    "input_value": [("input.value", _text)],
    "output_value": [("output.value", _text)],
    "invocation_parameters": [("llm.invocation_parameters", None)],
}  # fmt: skip
# Counted from the others: not kept twice.
DERIVED = frozenset({"gen_ai.usage.total_tokens", "llm.token_count.total", "llm.usage.total_tokens"})
# attribute -> (column, rank, converter)
_BY_ATTRIBUTE: dict[str, tuple[str, int, Callable[[object], Any] | None]] = {
    attribute: (column, rank, convert)
    for column, names in SCALARS.items()
    for rank, (attribute, convert) in enumerate(names)
}
REQUEST_PREFIX = "gen_ai.request."
# Indexed message attributes: prefix -> (side, how many dotted parts to skip after the index).
INDEXED = {
    "gen_ai.prompt.": "input",
    "gen_ai.completion.": "output",
    "llm.input_messages.": "input",
    "llm.output_messages.": "output",
}
_INDEXED_PREFIXES = tuple(INDEXED)
INPUT_EVENTS = {
    "gen_ai.system.message": "system", "gen_ai.user.message": "user", "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}  # fmt: skip
OUTPUT_EVENTS = frozenset({"gen_ai.choice"})
DETAILS_EVENTS = frozenset(
    {"gen_ai.client.inference.operation.details", "gen_ai.content.prompt", "gen_ai.content.completion"}
)
FIRST_TOKEN_EVENTS = frozenset({"First Token Stream Event", "gen_ai.first_token", "first_token"})


@dataclass(slots=True)
class Mapped:
    """What one span's attributes and events say, by column; `attributes` is what no column took."""

    operation: str = ""
    provider: str = ""
    model: str = ""
    request_model: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    time_to_first_token_ms: float | None = None
    session_key: str = ""
    user_key: str = ""
    prompt_name: str = ""
    prompt_version_number: int | None = None
    input: object = None
    output: object = None
    parameters: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)


def _json_value(value: object) -> object:
    """A JSON attribute: senders put structures in strings (the OTLP attribute types have no objects)."""
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _set_path(container: dict, parts: list[str], value: object) -> None:
    """Nest `value` at `parts` (`tool_calls.0.tool_call.function.name`), numbers indexing lists.

    A sender naming one path both as a value and as a container keeps the first one.
    """
    node: Any = container
    for position, part in enumerate(parts):
        last = position == len(parts) - 1
        child: Any = value if last else [] if parts[position + 1].isdigit() else {}
        if isinstance(node, list) and part.isdigit():
            index = int(part)
            node.extend([None] * (index + 1 - len(node)))
            if last or node[index] is None:
                node[index] = child
        elif isinstance(node, dict):
            if last:
                node[part] = child
            else:
                node.setdefault(part, child)
            index = part
        else:
            return
        node = node[index]


def _indexed_messages(items: dict[int, dict]) -> list[dict]:
    """Indexed messages in index order, OpenInference's `message.` level and `contents` parts flattened."""
    messages = []
    for _, message in sorted(items.items()):
        inner = message.get("message", message)
        if isinstance(inner, dict) and "contents" in inner and "content" not in inner:
            parts = inner.pop("contents") or []
            texts = [p.get("message_content", p).get("text", "") for p in parts if isinstance(p, dict)]
            inner["content"] = "".join(t for t in texts if isinstance(t, str))
        messages.append(inner)
    return messages


# How map_span files an attribute that no column takes (remembered per key, a bounded number of keys).
_PARAMETER, _INDEXED_KEY, _DERIVED_KEY, _LEFTOVER = 1, 2, 3, 4
_KINDS: dict[str, object] = dict(_BY_ATTRIBUTE)
_KINDS_MAX = 10_000


def _kind(key: str) -> int:
    if key.startswith(REQUEST_PREFIX):
        kind = _PARAMETER
    elif key.startswith(_INDEXED_PREFIXES):
        return _INDEXED_KEY  # not remembered: the index makes endless keys
    elif key in DERIVED:
        kind = _DERIVED_KEY
    else:
        kind = _LEFTOVER
    if len(_KINDS) < _KINDS_MAX:
        _KINDS[key] = kind
    return kind


def map_span(attributes: Iterable[tuple[str, object]], events: Iterable[tuple[str, int, dict]] = ()) -> Mapped:
    """Map one span's (attribute, value) pairs and (name, time in ns, attributes) events."""
    mapped = Mapped()
    found: dict[str, Any] = {}
    ranks: dict[str, int] = {}
    indexed: dict[str, dict[int, dict]] = {}
    leftover = mapped.attributes
    kinds = _KINDS.get
    for key, value in attributes:
        kind = kinds(key) or _kind(key)
        if kind == _LEFTOVER:
            leftover[key] = value
        elif kind.__class__ is tuple:
            column, rank, convert = kind
            if convert is not None:
                value = convert(value)
                if value is None or value == "":
                    continue
            if column not in found or rank < ranks[column]:
                found[column] = value
                ranks[column] = rank
        elif kind == _PARAMETER:
            mapped.parameters[key[len(REQUEST_PREFIX) :]] = value
        elif kind == _INDEXED_KEY and not _add_indexed(indexed, key, value):
            leftover[key] = value
    if found or indexed:
        _apply(mapped, found, indexed)
    if events:
        _apply_events(mapped, events)
    return mapped


def _add_indexed(indexed: dict[str, dict[int, dict]], key: str, value: object) -> bool:
    for prefix, side in INDEXED.items():
        if key.startswith(prefix):
            rest = key[len(prefix) :].split(".")
            if len(rest) < 2 or not rest[0].isdigit():
                return False
            # Each family fills its side on its own: gen_ai.prompt.* and llm.input_messages.* are not merged.
            family = indexed.setdefault(f"{side}:{prefix}", {})
            _set_path(family.setdefault(int(rest[0]), {}), rest[1:], value)
            return True
    return False


# Columns copied as found (the others are combined below).
_PLAIN = frozenset({
    "operation", "provider", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost", "time_to_first_token_ms", "prompt_version_number", "session_key", "user_key",
    "prompt_name",
})  # fmt: skip


def _apply(mapped: Mapped, found: Mapping[str, Any], indexed: Mapping[str, dict[int, dict]]) -> None:
    rest = False
    for column, value in found.items():
        if column in _PLAIN:
            setattr(mapped, column, value)
        else:
            rest = True
    if not rest and not indexed:
        return
    get = found.get
    mapped.request_model = get("request_model", "")
    mapped.model = get("response_model") or mapped.request_model
    if "invocation_parameters" in found:
        invocation = _json_value(found["invocation_parameters"])
        if isinstance(invocation, dict):
            mapped.parameters = {**invocation, **mapped.parameters}
    for side in ("input", "output"):
        # JSON text as sent is kept as it is (the API parses it); anything else is encoded when stored.
        messages = get(f"{side}_messages")
        if messages is None and indexed:
            families = [family for key, family in indexed.items() if key.startswith(f"{side}:")]
            messages = _indexed_messages(families[0]) if families else None
        if messages is None:
            messages = get(f"{side}_value")
        setattr(mapped, side, messages)
    if "system_instructions" in found:
        system = _json_value(found["system_instructions"])
        messages = _json_value(mapped.input)
        rest = messages if isinstance(messages, list) else [] if messages is None else [messages]
        mapped.input = [{"role": "system", "parts": system if isinstance(system, list) else [system]}, *rest]


def _apply_events(mapped: Mapped, events: Iterable[tuple[str, int, dict]]) -> None:
    """Messages sent as events (the deprecated GenAI event form) and the first token's time; others kept."""
    inputs: list = []
    outputs: list = []
    for name, time_ns, attributes in events:
        if name in INPUT_EVENTS:
            inputs.append({"role": attributes.get("role") or INPUT_EVENTS[name], **_event_message(attributes)})
        elif name in OUTPUT_EVENTS:
            outputs.append(_event_message(attributes))
        elif name in DETAILS_EVENTS:
            for key, value in attributes.items():
                if key in ("gen_ai.input.messages", "gen_ai.prompt") and mapped.input is None:
                    mapped.input = _json_value(value)
                elif key in ("gen_ai.output.messages", "gen_ai.completion") and mapped.output is None:
                    mapped.output = _json_value(value)
        else:
            mapped.events.append({"name": name, "time_unix_nano": time_ns, "attributes": attributes})
    if inputs and mapped.input is None:
        mapped.input = inputs
    if outputs and mapped.output is None:
        mapped.output = outputs


def _event_message(attributes: Mapping[str, object]) -> dict:
    message = {key.removeprefix("gen_ai."): _json_value(value) for key, value in attributes.items()}
    inner = message.pop("message", None)
    if isinstance(inner, dict):
        message.update(inner)
    return message


def first_token_ns(events: Iterable[Mapping]) -> int | None:
    """When the first token came, from a first-token event kept on the span (None when there is none)."""
    for event in events:
        if event.get("name") in FIRST_TOKEN_EVENTS:
            return int(event.get("time_unix_nano") or 0) or None
    return None


def mapping_table() -> list[tuple[str, list[str]]]:
    """(column, attributes that fill it, best first), for the documentation."""
    return [(column, [name for name, _ in names]) for column, names in SCALARS.items()]
