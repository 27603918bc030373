"""The records the scorers work on, and what each scorer module declares about itself."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opsportal.errors import InvalidInput

# A built scorer: takes a case and returns (score 0..1, reason, raw value or None).
Measure = Callable[["Case"], tuple[float, str, float | None]]


class ScorerConfigError(InvalidInput):
    """A scorer configuration that can't be used; `field` is the path of the offending input.

    An `InvalidInput` (and so a ValueError): a service that validates scorers lets it through as the
    request's 400 naming that path.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class ConfigProblem(Exception):
    """Raised by a scorer's builder; `field` is relative to the scorer's config."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CannotScore(Exception):
    """The case lacks what the scorer needs (no expected output, no latency ...).

    The result then fails with this reason, whether or not the scorer is negated.
    """


@dataclass(frozen=True)
class ScorerSpec:
    """One configured scorer of an evaluation run.

    `config` must not be changed after the spec is first scored: the built scorer
    (compiled regex, JSON schema validator ...) is kept on the instance.
    """

    type: str
    config: dict = field(default_factory=dict)
    weight: float = 1.0
    threshold: float | None = None
    negate: bool = False
    name: str = ""

    def __hash__(self) -> int:
        # The generated hash would fail on the config dict; its canonical JSON stands in.
        return hash((self.type, canonical_json(self.config), self.weight, self.threshold, self.negate, self.name))

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if not key.startswith("_")}

    @property
    def display_name(self) -> str:
        """`name`, or the type with its `not-` prefix when negated."""
        if self.name:
            return self.name
        if self.negate and not self.type.startswith("not-"):
            return f"not-{self.type}"
        return self.type


@dataclass
class Case:
    """What is scored: one model output with what is known about it."""

    output: str
    expected: str | None = None
    context: str | None = None
    variables: dict = field(default_factory=dict)
    latency_ms: float | None = None
    cost: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None


@dataclass
class ScoreResult:
    """One scorer's verdict on one case."""

    score: float
    passed: bool
    reason: str
    value: float | None = None


@dataclass(frozen=True)
class ConfigField:
    """One option of a scorer's config, described for validation, docs and UI forms."""

    name: str
    kind: str  # string, text, string_list, integer, number, boolean, object, choice
    help: str
    required: bool = False
    default: Any = None
    choices: tuple = ()
    minimum: float | None = None

    def as_dict(self) -> dict:
        data = {"name": self.name, "kind": self.kind, "help": self.help, "required": self.required}
        if self.default is not None:
            data["default"] = self.default
        if self.choices:
            data["choices"] = list(self.choices)
        if self.minimum is not None:
            data["minimum"] = self.minimum
        return data


@dataclass(frozen=True)
class ScorerInfo:
    """What a scorer is, for docs, the API and UI forms, and how to build it from a config."""

    name: str
    label: str
    description: str
    passing: str  # what a pass means, in one sentence
    config_fields: tuple[ConfigField, ...] = ()
    # None: the score is 0 or 1 and a threshold does not apply.
    default_threshold: float | None = None
    supports_not: bool = True
    not_reason: str = ""  # why there is no not-form
    needs_expected: bool = False  # compares with case.expected unless config.value is set
    is_llm: bool = False
    library: str = ""
    # How the threshold reads in a reason; toxicity's is a highest allowed probability.
    threshold_text: Callable[[float], str] = field(default=lambda limit: f"threshold {limit:g}", repr=False)
    build: Callable[[dict], Measure] | None = field(default=None, repr=False, compare=False)

    @property
    def graded(self) -> bool:
        return self.default_threshold is not None

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "description": self.description,
            "passing": self.passing,
            "config_fields": [f.as_dict() for f in self.config_fields],
            "default_threshold": self.default_threshold,
            "supports_threshold": self.graded,
            "supports_not": self.supports_not,
            "not_reason": self.not_reason,
            "needs_expected": self.needs_expected,
            "is_llm": self.is_llm,
            "library": self.library,
        }


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def quote(text: str, limit: int = 60) -> str:
    """A config value shown in a reason: repr-quoted and cut to `limit` characters."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return repr(text)


def quote_list(items: list[str], limit: int = 3) -> str:
    shown = ", ".join(quote(item, 40) for item in items[:limit])
    if len(items) > limit:
        shown += f" and {len(items) - limit} more"
    return shown


_VARIABLE = re.compile(r"\{\{\s*([\w.-]+)\s*\}\}")


def text_template(text: str) -> Callable[[Case], str]:
    """`{{ name }}` placeholders filled from `case.variables`; a plain string costs nothing per case."""
    if "{{" not in text:
        return lambda case: text

    def render(case: Case) -> str:
        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name not in case.variables:
                raise CannotScore(f"variable {name!r} is not set in the case")
            return str(case.variables[name])

        return _VARIABLE.sub(replace, text)

    return render


def reference(config: dict) -> Callable[[Case], str]:
    """The text to compare with: config `value` when set, else `case.expected`."""
    if config.get("value") is not None:
        return text_template(config["value"])

    def expected(case: Case) -> str:
        if case.expected is None:
            raise CannotScore("no expected output to compare with (set case.expected or config.value)")
        return case.expected

    return expected


VALUE_OR_EXPECTED = ConfigField(
    "value",
    "text",
    "Text to compare with; when empty, the case's expected output is used. {{ variable }} placeholders are filled "
    "from the case's variables.",
)
