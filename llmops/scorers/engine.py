"""The registry of scorers, validation of user-given specs, and scoring."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from rapidfuzz import fuzz, process

from . import judge, limits, pii, safety, similarity, structured, text
from .base import (
    CannotScore,
    Case,
    ConfigField,
    ConfigProblem,
    ScorerConfigError,
    ScoreResult,
    ScorerInfo,
    ScorerSpec,
    canonical_json,
)

SCORERS: dict[str, ScorerInfo] = {
    info.name: info for module in (text, structured, limits, similarity, safety, pii, judge) for info in module.SCORERS
}
SPEC_FIELDS = ("type", "config", "weight", "threshold", "negate", "name")
NAME_MAX_LENGTH = 100

Run = Callable[[Case], ScoreResult]


def _at(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _describe(value: Any) -> str:
    return {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}.get(
        type(value), type(value).__name__
    )


def _check_number(value: Any, where: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScorerConfigError(where, f"must be a number, not {_describe(value)}")
    if not math.isfinite(value):
        raise ScorerConfigError(where, "must be a finite number")
    if minimum is not None and value < minimum:
        raise ScorerConfigError(where, f"must be at least {minimum:g}")
    return value


def _check_option(option: ConfigField, value: Any, where: str) -> Any:
    kind = option.kind
    if kind in ("string", "text"):
        if not isinstance(value, str):
            raise ScorerConfigError(where, f"must be a string, not {_describe(value)}")
        return value
    if kind == "string_list":
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise ScorerConfigError(where, "must be a list of strings")
        for index, item in enumerate(value):
            if option.choices and item not in option.choices:
                raise ScorerConfigError(
                    f"{where}[{index}]", f"unknown {item!r} (choose from {', '.join(option.choices)})"
                )
        return list(value)
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ScorerConfigError(where, f"must be a whole number, not {_describe(value)}")
        return int(_check_number(value, where, option.minimum))
    if kind == "number":
        return _check_number(value, where, option.minimum)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ScorerConfigError(where, f"must be true or false, not {_describe(value)}")
        return value
    if kind == "object":
        if not isinstance(value, dict):
            raise ScorerConfigError(where, f"must be an object, not {_describe(value)}")
        return value
    if kind == "choice":
        for choice in option.choices:
            if not isinstance(value, bool) and (value == choice or str(value) == str(choice)):
                return choice
        raise ScorerConfigError(where, f"must be one of {', '.join(str(c) for c in option.choices)}")
    raise AssertionError(f"unknown option kind {kind!r}")


def check_config(info: ScorerInfo, config: Any, path: str = "") -> dict:
    """The config with defaults filled in; raises ScorerConfigError naming the option."""
    where = _at(path, "config")
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ScorerConfigError(where, f"must be an object, not {_describe(config)}")
    options = {option.name: option for option in info.config_fields}
    for key in config:
        if key not in options:
            allowed = f"options: {', '.join(options)}" if options else "it takes no options"
            raise ScorerConfigError(f"{where}.{key}", f"unknown option for {info.name} ({allowed})")
    checked = {}
    for option in info.config_fields:
        value = config.get(option.name)
        if value is None or (value == "" and option.kind in ("string", "text")):
            if option.required:
                raise ScorerConfigError(f"{where}.{option.name}", "required")
            default = option.default
            checked[option.name] = list(default) if isinstance(default, list) else default
            continue
        checked[option.name] = _check_option(option, value, f"{where}.{option.name}")
    return checked


def _resolve_type(raw: Any, path: str) -> tuple[ScorerInfo, bool]:
    where = _at(path, "type")
    if raw is None or raw == "":
        raise ScorerConfigError(where, "required")
    if not isinstance(raw, str):
        raise ScorerConfigError(where, f"must be a string, not {_describe(raw)}")
    if raw in SCORERS:
        return SCORERS[raw], False
    if raw.startswith("not-") and raw[4:] in SCORERS:
        return SCORERS[raw[4:]], True
    guess = process.extractOne(raw, list(SCORERS), scorer=fuzz.ratio, score_cutoff=70)
    hint = f" (did you mean {guess[0]!r}?)" if guess else f" (known: {', '.join(SCORERS)})"
    raise ScorerConfigError(where, f"unknown scorer {raw!r}{hint}")


def parse_spec(data: Any, path: str = "") -> ScorerSpec:
    """A validated ScorerSpec from user input (JSON, a form).

    Errors name the exact input: with path "scorers[2]" a bad pattern raises
    ScorerConfigError("scorers[2].config.pattern", "invalid regex: ..."). "not-contains"
    is read as contains with negate=True. The returned spec has its config's defaults filled
    in and is built, ready to score.
    """
    if not isinstance(data, dict):
        raise ScorerConfigError(path or "scorer", f"must be an object, not {_describe(data)}")
    for key in data:
        if key not in SPEC_FIELDS:
            raise ScorerConfigError(_at(path, str(key)), f"unknown field (fields: {', '.join(SPEC_FIELDS)})")
    info, negate = _resolve_type(data.get("type"), path)
    if "negate" in data and data["negate"] is not None:
        if not isinstance(data["negate"], bool):
            raise ScorerConfigError(_at(path, "negate"), f"must be true or false, not {_describe(data['negate'])}")
        if negate and not data["negate"]:
            raise ScorerConfigError(_at(path, "negate"), f"false contradicts the type {data['type']!r}")
        negate = data["negate"]
    if negate and not info.supports_not:
        raise ScorerConfigError(_at(path, "type"), f"{info.name} has no not-form: {info.not_reason}")
    weight = data.get("weight")
    weight = 1.0 if weight is None else float(_check_number(weight, _at(path, "weight"), 0))
    threshold = data.get("threshold")
    if threshold is not None:
        if not info.graded:
            raise ScorerConfigError(_at(path, "threshold"), f"{info.name} scores 0 or 1; a threshold does not apply")
        threshold = float(_check_number(threshold, _at(path, "threshold"), 0))
        if threshold > 1:
            raise ScorerConfigError(_at(path, "threshold"), "must be between 0 and 1 (scores are normalised)")
    name = data.get("name") or ""
    if not isinstance(name, str):
        raise ScorerConfigError(_at(path, "name"), f"must be a string, not {_describe(name)}")
    if len(name) > NAME_MAX_LENGTH:
        raise ScorerConfigError(_at(path, "name"), f"at most {NAME_MAX_LENGTH} characters")
    config = check_config(info, data.get("config"), path)
    spec = ScorerSpec(type=info.name, config=config, weight=weight, threshold=threshold, negate=negate, name=name)
    try:
        _attach(spec)
    except ScorerConfigError as error:
        raise ScorerConfigError(_at(path, error.field), error.message) from None
    return spec


def parse_specs(data: Any, path: str = "scorers") -> list[ScorerSpec]:
    """A run's list of scorers; errors are named like "scorers[2].config.pattern"."""
    if not isinstance(data, list):
        raise ScorerConfigError(path, f"must be a list, not {_describe(data)}")
    if not data:
        raise ScorerConfigError(path, "give at least one scorer")
    return [parse_spec(item, f"{path}[{index}]") for index, item in enumerate(data)]


@functools.lru_cache(maxsize=1024)
def _prepared(type_: str, config_json: str, threshold: float | None, negate: bool) -> Run:
    """The scoring function of a spec; shared by equal specs, so a schema or pattern is compiled once."""
    info, type_negated = _resolve_type(type_, "")
    negate = negate or type_negated
    if negate and not info.supports_not:
        raise ScorerConfigError("type", f"{info.name} has no not-form: {info.not_reason}")
    if threshold is not None and not info.graded:
        raise ScorerConfigError("threshold", f"{info.name} scores 0 or 1; a threshold does not apply")
    config = check_config(info, json.loads(config_json))
    try:
        measure = info.build(config)
    except ConfigProblem as problem:
        raise ScorerConfigError(f"config.{problem.field}", problem.message) from None
    if info.is_llm:
        return _needs_judge
    limit = threshold if threshold is not None else (info.default_threshold if info.graded else 1.0)
    suffix = f"; {info.threshold_text(limit)}" if info.graded else ""

    def run(case: Case) -> ScoreResult:
        try:
            value, reason, raw = measure(case)
        except CannotScore as exc:
            return ScoreResult(0.0, False, str(exc))
        # Float arithmetic in the metrics can land a hair outside 0..1 (BLEU 100.00000000000004).
        value = 0.0 if value < 0 else 1.0 if value > 1 else value
        passed = value >= limit
        if negate:
            return ScoreResult(1.0 - value, not passed, reason + suffix, raw)
        return ScoreResult(value, passed, reason + suffix, raw)

    return run


def _needs_judge(case: Case) -> ScoreResult:
    raise ValueError("llm-rubric is graded by a judge model: use judge_messages() and parse_judge_answer()")


def _attach(spec: ScorerSpec) -> Run:
    run = _prepared(spec.type, canonical_json(spec.config), spec.threshold, spec.negate)
    # Kept on the frozen instance so later calls skip even the cache key.
    object.__setattr__(spec, "_run", run)
    return run


def score(spec: ScorerSpec, case: Case) -> ScoreResult:
    """One scorer's result on one case (every scorer but llm-rubric)."""
    run = spec.__dict__.get("_run") or _attach(spec)
    return run(case)


def score_case(
    specs: list[ScorerSpec], case: Case, *, judged: Mapping[int, ScoreResult] | None = None
) -> tuple[bool, float, list[ScoreResult]]:
    """(passed, score, results): passed when every scorer passes; score is the weighted mean.

    `judged` holds the results of llm-rubric scorers (from parse_judge_answer), by their
    index in `specs`. When all weights are 0 the score is the plain mean.
    """
    if not specs:
        raise ValueError("score_case needs at least one scorer")
    results = [judged[i] if judged and i in judged else score(spec, case) for i, spec in enumerate(specs)]
    total_weight = sum(spec.weight for spec in specs)
    if total_weight > 0:
        mean = sum(spec.weight * result.score for spec, result in zip(specs, results, strict=True)) / total_weight
    else:
        mean = sum(result.score for result in results) / len(results)
    return all(result.passed for result in results), mean, results
