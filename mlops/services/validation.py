"""Checks of the values a caller gives the registry: names, tags, aliases, version fields (MLflow's rules)."""

from __future__ import annotations

import re

from .errors import InvalidValue

VERSION_EDIT_FIELDS = [
    "description", "source", "run_id", "run_link", "framework", "params", "metrics", "dataset", "code_version",
    "model_card",
]  # fmt: skip
NAME_RE = re.compile(r"^[^/\x00-\x1f]{1,256}$")
ALIAS_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,255}$")
# MLflow refuses aliases that look like version references (v1, V12, latest is reserved too).
RESERVED_ALIAS_RE = re.compile(r"^(v\d+|latest)$", re.IGNORECASE)
TAG_KEY_MAX = 250
TAG_VALUE_MAX = 5000


def validate_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValue(f"Missing value for required parameter '{field}'.", field=field)
    name = name.strip()
    if not NAME_RE.match(name) or set(name) == {"."}:
        raise InvalidValue(
            f"Invalid value {name!r} for parameter '{field}': at most 256 characters, no '/' or control characters.",
            field=field,
        )
    return name


def validate_tag(key: object, value: object) -> tuple[str, str]:
    if not isinstance(key, str) or not key.strip():
        raise InvalidValue("Missing value for required parameter 'key'.", field="key")
    if len(key) > TAG_KEY_MAX:
        raise InvalidValue(f"Tag key is longer than {TAG_KEY_MAX} characters.", field="key")
    if value is None:
        value = ""
    if not isinstance(value, str):
        value = str(value)
    if len(value) > TAG_VALUE_MAX:
        raise InvalidValue(f"Tag value for {key!r} is longer than {TAG_VALUE_MAX} characters.", field="value")
    return key, value


def validate_alias(alias: object) -> str:
    if not isinstance(alias, str) or not alias:
        raise InvalidValue("Missing value for required parameter 'alias'.", field="alias")
    if not ALIAS_RE.match(alias):
        raise InvalidValue(
            f"Invalid alias {alias!r}: use letters, digits, '_', '-' and '.', at most 255 characters.", field="alias"
        )
    if RESERVED_ALIAS_RE.match(alias):
        raise InvalidValue(f"Invalid alias {alias!r}: 'latest' and v<number> are reserved.", field="alias")
    return alias


def alias_list(aliases: object) -> list[str]:
    """A model's protected aliases: a list of valid alias names."""
    if aliases is None:
        return []
    if isinstance(aliases, str) or not isinstance(aliases, list | tuple):
        raise InvalidValue('Give a list of alias names, e.g. ["champion"].', field="protected_aliases")
    return [validate_alias(a) for a in aliases]


def _validate_numbers(values: object, field: str) -> dict[str, float]:
    if values in (None, ""):
        return {}
    if not isinstance(values, dict):
        raise InvalidValue(f"'{field}' must be an object of name -> number.", field=field)
    result = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise InvalidValue(
                    f"'{field}.{key}' must be a number, got {value!r}.", field=f"{field}.{key}"
                ) from None
        result[str(key)] = value
    return result


def _validate_params(values: object) -> dict[str, str]:
    if values in (None, ""):
        return {}
    if not isinstance(values, dict):
        raise InvalidValue("'params' must be an object of name -> value.", field="params")
    return {str(k): v if isinstance(v, str) else str(v) for k, v in values.items()}


def clean_version_fields(fields: dict) -> dict:
    """A version's editable fields, checked: metrics are numbers, params strings, the rest text."""
    unknown = set(fields) - set(VERSION_EDIT_FIELDS)
    if unknown:
        raise InvalidValue(f"Unknown field(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    cleaned = {}
    for key, value in fields.items():
        if key == "metrics":
            cleaned[key] = _validate_numbers(value, "metrics")
        elif key == "params":
            cleaned[key] = _validate_params(value)
        else:
            cleaned[key] = "" if value is None else str(value)
    return cleaned
