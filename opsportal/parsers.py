"""The API's request parsers (`REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]`).

A module of its own: DRF resolves its default parsers when `rest_framework.views` is first imported,
so they cannot live beside the exception handler that imports it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, parsers


def contains_nul(data: Any) -> bool:
    """Whether a parsed JSON document has a NUL character in any key or string (PostgreSQL stores neither)."""
    if isinstance(data, str):
        return "\x00" in data
    if isinstance(data, dict):
        return any(contains_nul(key) or contains_nul(value) for key, value in data.items())
    if isinstance(data, list):
        return any(contains_nul(item) for item in data)
    return False


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing NUL characters (`\\u0000`): PostgreSQL cannot keep them in text or JSON."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if contains_nul(data):
            raise exceptions.ParseError("JSON parse error - strings may not contain NUL (\\u0000) characters.")
        return data


def form_contains_nul(data: Any) -> bool:
    """Whether a parsed form (a QueryDict) has a NUL character in a field name or any of its values."""
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in data.lists())


FORM_NUL = "Form parse error - fields may not contain NUL (%00) characters."


class FormParser(parsers.FormParser):
    """DRF's form parser, refusing NUL characters: PostgreSQL cannot keep them in text."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if form_contains_nul(data):
            raise exceptions.ParseError(FORM_NUL)
        return data


class MultiPartParser(parsers.MultiPartParser):
    """DRF's multipart parser, refusing NUL characters in the form fields (files are bytes and may hold any)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)
        if form_contains_nul(parsed.data) or any("\x00" in name for name in parsed.files):
            raise exceptions.ParseError(FORM_NUL)
        return parsed
