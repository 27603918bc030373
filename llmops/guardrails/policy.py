"""A policy's checks: validated from what people write, compiled once, and applied to a text.

A check in a policy is `{"check": <type>, "name": <shown in violations, default the type>,
"threshold": <graded checks>, "directions": ["input", "output"], "config": {...}}`. Rule-based checks run
first; llm-rubric checks ask the judge model only when the rules let the text through (a blocked text
costs no judge call). The verdict: no violation, allowed; with action `redact`, allowed when every
violation could be masked (personal data, secrets, invisible characters, masked banned words); with
action `block`, any violation refuses the text. `redacted_text` masks what can be masked either way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync

from opsportal.errors import InvalidInput

from ..scorers import Case, ScorerSpec, judge_messages, parse_judge_answer
from ..scorers.base import ConfigProblem, ScorerConfigError, canonical_json
from ..scorers.engine import check_config
from .checks import CHECKS, DIRECTIONS, Run, Span, Violation
from .normalise import fold

SPEC_FIELDS = ("check", "name", "threshold", "directions", "config")
NAME_MAX_LENGTH = 60
MAX_CHECKS = 30


@dataclass(frozen=True)
class CompiledCheck:
    """One configured check, ready to run."""

    type: str
    name: str
    threshold: float | None
    directions: frozenset[str]
    config: dict
    run: Run

    @property
    def is_llm(self) -> bool:
        return CHECKS[self.type].is_llm


@dataclass(frozen=True)
class Verdict:
    """What the guard answers."""

    allowed: bool
    violations: tuple[Violation, ...]
    redacted_text: str

    def as_dict(self) -> dict:
        return {
            "allowed": self.allowed,
            "violations": [violation.as_dict() for violation in self.violations],
            "redacted_text": self.redacted_text,
        }


def _describe(value: Any) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def clean_check(data: Any, path: str) -> dict:
    """One check as stored: fields checked, defaults filled in; errors name `path` and the field."""
    if not isinstance(data, dict):
        raise InvalidInput(f"must be an object, not {_describe(data)}", field=path)
    for key in data:
        if key not in SPEC_FIELDS:
            raise InvalidInput(f"unknown field (fields: {', '.join(SPEC_FIELDS)})", field=f"{path}.{key}")
    kind = data.get("check")
    if kind not in CHECKS:
        raise InvalidInput(f"unknown check {kind!r} (choose from {', '.join(CHECKS)})", field=f"{path}.check")
    info = CHECKS[kind]
    name = data.get("name") or kind
    if not isinstance(name, str) or len(name) > NAME_MAX_LENGTH:
        raise InvalidInput(f"a text of at most {NAME_MAX_LENGTH} characters", field=f"{path}.name")
    threshold = data.get("threshold")
    if threshold is not None:
        if not info.graded:
            raise InvalidInput(f"{kind} finds or does not find; a threshold does not apply", field=f"{path}.threshold")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold <= 1:
            raise InvalidInput("a number between 0 and 1", field=f"{path}.threshold")
        threshold = float(threshold)
    directions = data.get("directions") or list(DIRECTIONS)
    if not isinstance(directions, list) or not directions or any(d not in DIRECTIONS for d in directions):
        raise InvalidInput('a list of "input" and/or "output"', field=f"{path}.directions")
    try:
        config = check_config(info, data.get("config"), path)
    except ScorerConfigError as error:
        raise InvalidInput(error.message, field=error.field) from None
    cleaned = {"check": kind, "name": name, "threshold": threshold, "directions": sorted(set(directions)),
               "config": config}  # fmt: skip
    _compile_one(cleaned, path)
    return cleaned


def clean_checks(data: Any, field: str = "checks") -> list[dict]:
    """A policy's list of checks as stored; check names must differ (they name the violations)."""
    if not isinstance(data, list):
        raise InvalidInput(f"must be a list, not {_describe(data)}", field=field)
    if len(data) > MAX_CHECKS:
        raise InvalidInput(f"at most {MAX_CHECKS} checks", field=field)
    cleaned = [clean_check(item, f"{field}[{index}]") for index, item in enumerate(data)]
    seen: set[str] = set()
    for index, check in enumerate(cleaned):
        if check["name"] in seen:
            raise InvalidInput(f"another check is named {check['name']!r}: give this one a name",
                               field=f"{field}[{index}].name")  # fmt: skip
        seen.add(check["name"])
    return cleaned


def _compile_one(check: dict, path: str = "") -> CompiledCheck:
    info = CHECKS[check["check"]]
    try:
        run = info.build(check["config"], check["threshold"], check["name"])
    except ConfigProblem as problem:
        where = f"{path}.config.{problem.field}" if path else f"config.{problem.field}"
        raise InvalidInput(problem.message, field=where) from None
    return CompiledCheck(check["check"], check["name"], check["threshold"], frozenset(check["directions"]),
                         check["config"], run)  # fmt: skip


@functools.lru_cache(maxsize=256)
def _compiled(checks_json: str) -> tuple[CompiledCheck, ...]:
    return tuple(_compile_one(check) for check in json.loads(checks_json))


def compile_checks(checks: list[dict]) -> tuple[CompiledCheck, ...]:
    """The stored checks of a policy, compiled (shared by equal policies: patterns are built once)."""
    return _compiled(canonical_json(checks))


def redact(text: str, spans: list[Span]) -> str:
    """`text` with each span replaced; where spans overlap, the first (and longest) wins."""
    if not spans:
        return text
    out, position = [], 0
    for start, end, replacement in sorted(spans, key=lambda span: (span[0], -span[1])):
        if start < position:
            continue
        out += [text[position:start], replacement]
        position = end
    out.append(text[position:])
    return "".join(out)


Judge = Callable[[CompiledCheck, str], Violation | None]


def judge_with(model: Any) -> Judge:
    """A judge for llm-rubric checks asking `model` (an LLMModel) through the evaluation engine's caller."""
    from .. import engine

    async def ask(check: CompiledCheck, text: str):
        caller = engine.Caller()
        try:
            spec = ScorerSpec(type="llm-rubric", config={"rubric": check.config["rubric"]}, threshold=check.threshold)
            return spec, await caller.chat(model, judge_messages(spec, Case(output=text)), {"temperature": 0})
        finally:
            await caller.close()

    def judge(check: CompiledCheck, text: str) -> Violation | None:
        spec, generation = async_to_sync(ask)(check, text)
        if generation.error:
            if check.config["allow_on_error"]:
                return None
            return Violation(check.name, f"the judge could not be asked: {generation.error}", 1.0)
        result = parse_judge_answer(spec, generation.output)
        if result.passed:
            return None
        return Violation(check.name, f"judge: {result.reason}", round(1.0 - result.score, 4))

    return judge


def no_judge(check: CompiledCheck, text: str) -> Violation | None:
    if check.config["allow_on_error"]:
        return None
    return Violation(check.name, "no judge model is set on the policy for this llm-rubric check", 1.0)


def evaluate(
    checks: tuple[CompiledCheck, ...], *, text: str, direction: str, action: str, judge: Judge = no_judge
) -> tuple[Verdict, int]:
    """(the verdict on `text`, the bit mask of the violated check types)."""
    folded = fold(text)
    violations: list[Violation] = []
    bits = 0
    applicable = [check for check in checks if direction in check.directions]
    for check in applicable:
        if check.is_llm:
            continue
        violation = check.run(text, folded)
        if violation is not None:
            violations.append(violation)
            bits |= CHECKS[check.type].bit

    def allowed() -> bool:
        if not violations:
            return True
        return action == "redact" and all(violation.redactable for violation in violations)

    if allowed():
        for check in applicable:
            if check.is_llm:
                violation = judge(check, text)
                if violation is not None:
                    violations.append(violation)
                    bits |= CHECKS[check.type].bit
    spans = [span for violation in violations for span in violation.spans]
    return Verdict(allowed(), tuple(violations), redact(text, spans)), bits
