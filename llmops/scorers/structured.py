"""Structured output: is-json and json-schema."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
from jsonschema.exceptions import SchemaError, best_match

from .base import Case, ConfigField, ConfigProblem, Measure, ScorerInfo

ALLOW_FENCE = ConfigField(
    "allow_fence",
    "boolean",
    "Also accept the JSON wrapped in one Markdown code fence (```json ... ```), as chat models often answer.",
    default=False,
)
_FENCE = re.compile(r"\A\s*```[\w-]*[ \t]*\n(.*?)\n?[ \t]*```\s*\Z", re.DOTALL)
_NOT_PARSED = object()


@functools.lru_cache(maxsize=512)
def parse_output_json(text: str, allow_fence: bool) -> tuple[Any, str]:
    """(parsed value, "") or (_NOT_PARSED, why); cached so is-json and json-schema parse a case once."""
    if allow_fence:
        fenced = _FENCE.match(text)
        if fenced:
            text = fenced.group(1)
    try:
        return json.loads(text), ""
    except ValueError as exc:
        return _NOT_PARSED, f"not valid JSON: {exc}"


def build_is_json(config: dict) -> Measure:
    allow_fence = config["allow_fence"]

    def measure(case: Case) -> tuple[float, str, float | None]:
        value, problem = parse_output_json(case.output, allow_fence)
        if value is _NOT_PARSED:
            return 0.0, problem, None
        return 1.0, f"valid JSON ({type(value).__name__ if not isinstance(value, dict) else 'object'})", None

    return measure


def build_json_schema(config: dict) -> Measure:
    schema = config["schema"]
    validator_class = jsonschema.validators.validator_for(schema)
    try:
        validator_class.check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(part) for part in exc.absolute_path)
        raise ConfigProblem("schema", f"invalid JSON schema{f' at {where}' if where else ''}: {exc.message}") from None
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    allow_fence = config["allow_fence"]

    def measure(case: Case) -> tuple[float, str, float | None]:
        value, problem = parse_output_json(case.output, allow_fence)
        if value is _NOT_PARSED:
            return 0.0, problem, None
        if validator.is_valid(value):
            return 1.0, "matches the schema", None
        error = best_match(validator.iter_errors(value))
        where = error.json_path if error.absolute_path else "the document"
        message = error.message if len(error.message) <= 160 else error.message[:159] + "…"
        return 0.0, f"schema violation at {where}: {message}", None

    return measure


SCORERS = [
    ScorerInfo(
        name="is-json",
        label="Is JSON",
        description="The whole output parses as JSON (any value: object, array, string ...).",
        passing="the output is valid JSON",
        config_fields=(ALLOW_FENCE,),
        build=build_is_json,
    ),
    ScorerInfo(
        name="json-schema",
        label="JSON schema",
        description="The output parses as JSON and validates against the schema (the draft named by its $schema, "
        "2020-12 by default; formats such as email and date-time are checked). The reason names the first "
        "violation.",
        passing="the output is JSON that matches the schema",
        config_fields=(
            ConfigField("schema", "object", "A JSON schema, checked when the scorer is saved.", required=True),
            ALLOW_FENCE,
        ),
        library="jsonschema",
        build=build_json_schema,
    ),
]
