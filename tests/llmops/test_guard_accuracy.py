"""Each guard check's precision and recall on the labelled cases of tests/llmops/data/guard_cases.jsonl.

The file holds, per check, texts that must be caught (prompt injections and jailbreaks plain and disguised
with leetspeak, spaced letters, look-alike letters, zero-width characters, full-width letters or base64;
personal data; credentials; hidden characters; insults) and hard negatives that share their words ("ignore
my last email", "enable developer mode on Android", commit hashes, emoji sequences, Russian text, "kill the
process"). The floors are the figures measured when the rules were written, rounded down, so a change that
costs precision or recall fails here. Run with -s to see the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmops.guardrails import clean_checks, compile_checks, evaluate

CASES = Path(__file__).parent / "data" / "guard_cases.jsonl"
# The banned-words check needs words and topics to look for: those of a support bot that must not name
# competitors nor give investment or medical advice.
BANNED = {
    "check": "banned",
    "config": {
        "words": ["acme corp", "globex", "initech"],
        "topics": {
            "investment advice": ["buy stocks", "buy shares", "which stocks", "which shares", "stock should i buy",
                                  "invest in crypto", "investing in crypto", "good investment",
                                  "crypto should i invest"],
            "medical diagnosis": ["diagnose", "diagnosis for my", "do i have diabetes"],
        },
    },
}  # fmt: skip
# (precision, recall) at least; measured: injection 1.000 / 0.965, pii 0.984 / 1.000, secrets 1.000 / 1.000,
# unicode 1.000 / 1.000, toxicity 0.945 / 1.000, banned 1.000 / 1.000.
FLOORS = {
    "injection": (0.97, 0.94),
    "pii": (0.97, 0.97),
    "secrets": (0.97, 0.97),
    "unicode": (0.97, 0.97),
    "toxicity": (0.92, 0.97),
    "banned": (0.95, 0.95),
}
MIN_CASES = {"injection": 200, "pii": 80, "secrets": 100, "unicode": 70, "toxicity": 80, "banned": 40}


def load_cases() -> list[dict]:
    return [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]


def measure(check: str, cases: list[dict]) -> tuple[float, float, list[str]]:
    """(precision, recall, the texts it got wrong) of a policy holding only `check`."""
    spec = BANNED if check == "banned" else {"check": check}
    compiled = compile_checks(clean_checks([spec]))
    true_positive = false_positive = false_negative = 0
    wrong = []
    for case in cases:
        verdict, _bits = evaluate(compiled, text=case["text"], direction="input", action="block")
        caught = not verdict.allowed
        if caught and case["label"]:
            true_positive += 1
        elif caught:
            false_positive += 1
            wrong.append(f"false positive: {case['text'][:80]!r}")
        elif case["label"]:
            false_negative += 1
            wrong.append(f"missed: {case['text'][:80]!r}")
    precision = true_positive / (true_positive + false_positive) if true_positive + false_positive else 1.0
    recall = true_positive / (true_positive + false_negative) if true_positive + false_negative else 1.0
    return precision, recall, wrong


@pytest.mark.parametrize("check", list(FLOORS))
def test_each_check_keeps_its_measured_precision_and_recall(check):
    cases = [case for case in load_cases() if case["check"] == check]
    positives = sum(case["label"] for case in cases)
    assert len(cases) >= MIN_CASES[check] and 0 < positives < len(cases)
    precision, recall, wrong = measure(check, cases)
    print(f"\n{check}: {len(cases)} cases ({positives} positive), precision {precision:.3f}, recall {recall:.3f}")
    for line in wrong:
        print(f"  {line}")
    floor_precision, floor_recall = FLOORS[check]
    assert precision >= floor_precision, wrong
    assert recall >= floor_recall, wrong
