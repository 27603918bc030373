"""Deterministic text checks: equals, contains and friends, regex."""

from __future__ import annotations

import regex

from .base import (
    VALUE_OR_EXPECTED,
    CannotScore,
    Case,
    ConfigField,
    ConfigProblem,
    Measure,
    ScorerInfo,
    quote,
    quote_list,
    reference,
    text_template,
)

# The `regex` module (not `re`) because its searches take a timeout: a user's pattern can
# backtrack catastrophically ("(a|aa)+$"), and scoring must not hang a worker on it.
REGEX_TIMEOUT_SECONDS = 0.1
REGEX_FLAGS = {"i": regex.IGNORECASE, "m": regex.MULTILINE, "s": regex.DOTALL, "x": regex.VERBOSE}

TRIM = ConfigField("trim", "boolean", "Ignore leading and trailing whitespace of the output.", default=True)
IGNORE_CASE = ConfigField("ignore_case", "boolean", "Compare case-insensitively.", default=False)
VALUE = ConfigField(
    "value", "text", "The text. {{ variable }} placeholders are filled from the case's variables.", True
)
VALUES = ConfigField(
    "values", "string_list", "The texts. {{ variable }} placeholders are filled from the case's variables.", True
)


def build_equals(config: dict) -> Measure:
    expected = reference(config)
    trim = config["trim"]

    def measure(case: Case) -> tuple[float, str, float | None]:
        want = expected(case)
        got = case.output
        if trim:
            want, got = want.strip(), got.strip()
        if got == want:
            return 1.0, "equals the expected text", None
        common = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), min(len(got), len(want)))
        return 0.0, f"differs from the expected text at character {common + 1}", None

    return measure


def _contains(config: dict, ignore_case: bool) -> Measure:
    template = text_template(config["value"])

    def measure(case: Case) -> tuple[float, str, float | None]:
        needle = template(case)
        found = needle.casefold() in case.output.casefold() if ignore_case else needle in case.output
        return (1.0, f"contains {quote(needle)}", None) if found else (0.0, f"missing: {quote(needle)}", None)

    return measure


def build_contains(config: dict) -> Measure:
    return _contains(config, ignore_case=False)


def build_icontains(config: dict) -> Measure:
    return _contains(config, ignore_case=True)


def _values(config: dict) -> tuple[list, bool]:
    values = config["values"]
    if not values:
        raise ConfigProblem("values", "give at least one text")
    if any(not value for value in values):
        raise ConfigProblem("values", "empty texts match everything; remove them")
    return [text_template(value) for value in values], config["ignore_case"]


def build_contains_any(config: dict) -> Measure:
    templates, ignore_case = _values(config)

    def measure(case: Case) -> tuple[float, str, float | None]:
        haystack = case.output.casefold() if ignore_case else case.output
        needles = [template(case) for template in templates]
        for needle in needles:
            if (needle.casefold() if ignore_case else needle) in haystack:
                return 1.0, f"contains {quote(needle)}", None
        return 0.0, f"contains none of {quote_list(needles)}", None

    return measure


def build_contains_all(config: dict) -> Measure:
    templates, ignore_case = _values(config)

    def measure(case: Case) -> tuple[float, str, float | None]:
        haystack = case.output.casefold() if ignore_case else case.output
        needles = [template(case) for template in templates]
        missing = [needle for needle in needles if (needle.casefold() if ignore_case else needle) not in haystack]
        found = len(needles) - len(missing)
        if not missing:
            return 1.0, f"contains all {len(needles)}", float(found)
        return found / len(needles), f"missing: {quote_list(missing)}", float(found)

    return measure


def build_starts_with(config: dict) -> Measure:
    template = text_template(config["value"])
    trim = config["trim"]

    def measure(case: Case) -> tuple[float, str, float | None]:
        prefix = template(case)
        output = case.output.lstrip() if trim else case.output
        if output.startswith(prefix):
            return 1.0, f"starts with {quote(prefix)}", None
        return 0.0, f"does not start with {quote(prefix)}", None

    return measure


def compile_pattern(pattern: str, flags: str) -> regex.Pattern:
    bits = 0
    for letter in flags:
        if letter not in REGEX_FLAGS:
            raise ConfigProblem("flags", f"unknown flag {letter!r} (use any of i, m, s, x)")
        bits |= REGEX_FLAGS[letter]
    if not pattern:
        raise ConfigProblem("pattern", "empty pattern matches everything")
    try:
        return regex.compile(pattern, bits | regex.VERSION0)
    except regex.error as exc:
        raise ConfigProblem("pattern", f"invalid regex: {exc}") from exc


def build_regex(config: dict) -> Measure:
    compiled = compile_pattern(config["pattern"], config["flags"])
    shown = f"/{config['pattern'][:60]}/"

    def measure(case: Case) -> tuple[float, str, float | None]:
        try:
            match = compiled.search(case.output, timeout=REGEX_TIMEOUT_SECONDS)
        except TimeoutError:
            raise CannotScore(
                f"pattern {shown} took over {REGEX_TIMEOUT_SECONDS * 1000:.0f} ms on this output "
                "(catastrophic backtracking?)"
            ) from None
        return (1.0, f"matches {shown}", None) if match else (0.0, f"no match for {shown}", None)

    return measure


SCORERS = [
    ScorerInfo(
        name="equals",
        label="Equals",
        description="The output is exactly the expected text (case-sensitive), by default ignoring surrounding "
        "whitespace.",
        passing="the output equals the text",
        config_fields=(VALUE_OR_EXPECTED, TRIM),
        needs_expected=True,
        build=build_equals,
    ),
    ScorerInfo(
        name="contains",
        label="Contains",
        description="The output contains the text (case-sensitive).",
        passing="the text occurs in the output",
        config_fields=(VALUE,),
        build=build_contains,
    ),
    ScorerInfo(
        name="icontains",
        label="Contains (any case)",
        description="The output contains the text, ignoring case (Unicode case folding).",
        passing="the text occurs in the output, in any case",
        config_fields=(VALUE,),
        build=build_icontains,
    ),
    ScorerInfo(
        name="contains-any",
        label="Contains any",
        description="The output contains at least one of the texts.",
        passing="one of the texts occurs in the output",
        config_fields=(VALUES, IGNORE_CASE),
        build=build_contains_any,
    ),
    ScorerInfo(
        name="contains-all",
        label="Contains all",
        description="The output contains every text; the score is the share found, so a threshold below 1 "
        "accepts some missing.",
        passing="the share of texts found reaches the threshold (all, by default)",
        config_fields=(VALUES, IGNORE_CASE),
        default_threshold=1.0,
        build=build_contains_all,
    ),
    ScorerInfo(
        name="starts-with",
        label="Starts with",
        description="The output starts with the text (case-sensitive), by default after leading whitespace.",
        passing="the output starts with the text",
        config_fields=(VALUE, TRIM),
        build=build_starts_with,
    ),
    ScorerInfo(
        name="regex",
        label="Regular expression",
        description="The pattern matches somewhere in the output (Python syntax; anchor it with ^ and $ to match "
        f"the whole output). Each search stops after {REGEX_TIMEOUT_SECONDS * 1000:.0f} ms, so a pattern that "
        "backtracks catastrophically fails the case instead of hanging the run.",
        passing="the pattern matches",
        config_fields=(
            ConfigField("pattern", "string", "The regular expression, Python syntax.", required=True),
            ConfigField(
                "flags",
                "string",
                "Letters: i ignore case, m multi-line ^/$, s dot matches newline, x verbose.",
                False,
                "",
            ),
        ),
        library="regex",
        build=build_regex,
    ),
]
