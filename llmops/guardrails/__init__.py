"""Guardrails: rule-based and judge-graded checks of texts going into and coming out of a model.

- `normalise`: the folded form the rules read (case, leetspeak, spacing, invisible and look-alike characters);
- `injection`: the prompt-injection and jailbreak pattern set and its scoring;
- `secrets`: credential formats and high-entropy tokens;
- `checks`: the check types (`CHECKS`), each with its options and builder;
- `policy`: a policy's checks validated, compiled and applied (`evaluate`).

Pure Python on top of the scorers; the records of guard calls are written by `llmops.services.guardrails`.
Documented in docs/llmops.md ("Guardrails").
"""

from .checks import CHECK_BITS, CHECKS, DIRECTIONS, INJECTION_RUBRIC, CheckInfo, Violation
from .policy import CompiledCheck, Verdict, clean_checks, compile_checks, evaluate, judge_with, no_judge, redact

__all__ = [
    "CHECKS",
    "CHECK_BITS",
    "DIRECTIONS",
    "INJECTION_RUBRIC",
    "CheckInfo",
    "CompiledCheck",
    "Verdict",
    "Violation",
    "clean_checks",
    "compile_checks",
    "evaluate",
    "judge_with",
    "no_judge",
    "redact",
]
