"""Evaluation scorers of LLMOps: deterministic checks, similarity metrics, safety checks and
LLM-as-judge support. Pure Python, no models or database. Documented in docs/llmops-scorers.md.

    spec = parse_spec({"type": "not-contains", "config": {"value": "As an AI"}}, "scorers[0]")
    passed, score_, results = score_case([spec], Case(output="Paris is the capital."))
"""

from .base import Case, ConfigField, ScorerConfigError, ScoreResult, ScorerInfo, ScorerSpec
from .engine import SCORERS, check_config, parse_spec, parse_specs, score, score_case
from .judge import JUDGE_SYSTEM_PROMPT, judge_messages, parse_judge_answer
from .pii import PII_KINDS, find_pii
from .safety import REFUSAL_PATTERNS

__all__ = [
    "JUDGE_SYSTEM_PROMPT",
    "PII_KINDS",
    "REFUSAL_PATTERNS",
    "SCORERS",
    "Case",
    "ConfigField",
    "ScoreResult",
    "ScorerConfigError",
    "ScorerInfo",
    "ScorerSpec",
    "check_config",
    "find_pii",
    "judge_messages",
    "parse_judge_answer",
    "parse_spec",
    "parse_specs",
    "score",
    "score_case",
]
