"""Comparing two runs item by item, and two texts line by line and word by word.

Pure functions on plain values (no request, no database): the compare page reads the rows and
pages the outcome; the prompt diff page uses the text comparison.

A is the baseline (before), B the candidate (now): a regression passed in A and fails (or errs) in B.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import defaultdict
from collections.abc import Mapping

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

# Texts longer than this are compared line by line only: word diffs of huge outputs cost too much.
WORD_DIFF_LIMIT = 20_000
DIFF_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
SHOW = {
    "all": "All items",
    "changed": "Changed only",
    "regressions": "Regressions",
    "improvements": "Improvements",
}
SHOWN_CHANGES = {
    "all": None,
    "changed": {"regression", "improvement"},
    "regressions": {"regression"},
    "improvements": {"improvement"},
}

# A result as the comparison sees it: (passed, error, score).
Verdict = tuple[bool | None, str, float | None]


def match_items(items_a: list[dict], items_b: list[dict], same_run: bool) -> tuple[list[tuple], str]:
    """Pairs of (item of A or None, item of B or None) and how they were matched.

    By position when both runs used the same snapshot of a dataset (same items in the same order), else by
    the dataset item each was copied from, else (imported outputs) by equal input and expected output.
    """
    if same_run:
        return [(item, item) for item in items_a], "the same run"
    same = len(items_a) == len(items_b) and all(
        a["source_item_id"] == b["source_item_id"] and a["input"] == b["input"] and a["expected_output"] ==
        b["expected_output"]
        for a, b in zip(items_a, items_b, strict=True)
    )  # fmt: skip
    if same:
        return list(zip(items_a, items_b, strict=True)), "position (both runs used the same dataset snapshot)"
    if any(item["source_item_id"] for item in items_a) and any(item["source_item_id"] for item in items_b):

        def key(item: dict) -> object:
            return item["source_item_id"]

        how = "dataset item (the runs used different snapshots)"
    else:

        def key(item: dict) -> object:
            return json.dumps([item["input"], item["expected_output"]], sort_keys=True, default=str)

        how = "equal input and expected output"
    right = {}
    for item in items_b:
        if key(item) is not None:
            right.setdefault(key(item), item)
    pairs, used = [], set()
    for item in items_a:
        match = right.get(key(item)) if key(item) is not None else None
        if match is not None and match["id"] not in used:
            used.add(match["id"])
            pairs.append((item, match))
        else:
            pairs.append((item, None))
    pairs += [(None, item) for item in items_b if item["id"] not in used]
    return pairs, how


def verdict(result: Verdict | None) -> str:
    """'pass', 'fail', 'error' or 'missing' for a (passed, error, score) row."""
    if result is None:
        return "missing"
    passed, error, _score = result
    if error:
        return "error"
    return "pass" if passed else "fail"


def change(before: str, after: str) -> str:
    """What happened to an item from A to B: regression, improvement, same, or unmatched."""
    if before == "missing" or after == "missing":
        return "unmatched"
    if before == "pass" and after != "pass":
        return "regression"
    if before != "pass" and after == "pass":
        return "improvement"
    return "same"


def compare_rows(
    pairs: list[tuple], verdicts_a: Mapping[int, Verdict], verdicts_b: Mapping[int, Verdict]
) -> tuple[list[dict], dict[str, int]]:
    """One row per pair (its verdicts, change and score delta), and the counts of each change and verdict."""
    rows, counts = [], defaultdict(int)
    for a, b in pairs:
        before = verdict(verdicts_a.get(a["id"])) if a else "missing"
        after = verdict(verdicts_b.get(b["id"])) if b else "missing"
        changed = change(before, after)
        counts[changed] += 1
        counts[f"a_{before}"] += 1
        counts[f"b_{after}"] += 1
        score_a = verdicts_a[a["id"]][2] if a and a["id"] in verdicts_a else None
        score_b = verdicts_b[b["id"]][2] if b and b["id"] in verdicts_b else None
        delta = score_b - score_a if score_a is not None and score_b is not None else None
        rows.append({"a": a, "b": b, "before": before, "after": after, "change": changed, "delta": delta})
    return rows, dict(counts)


def shown(rows: list[dict], show: str) -> list[dict]:
    """The rows a `show` filter (a key of SHOW) keeps."""
    wanted = SHOWN_CHANGES.get(show)
    return [row for row in rows if wanted is None or row["change"] in wanted]


def pass_rate(rows: list[dict], side: str) -> float | None:
    """Side "a" or "b"'s pass rate over the matched rows; as a run's pass rate, errors are not scored."""
    verdicts = [row["before" if side == "a" else "after"] for row in rows if row["change"] != "unmatched"]
    scored = [v for v in verdicts if v in ("pass", "fail")]
    return sum(v == "pass" for v in scored) / len(scored) if scored else None


def word_diff(a: str, b: str) -> tuple[SafeString, SafeString]:
    """Both texts, escaped, with the words only `a` has in <del> and those only `b` has in <ins>."""
    if len(a) + len(b) > WORD_DIFF_LIMIT:
        return escape(a), escape(b)
    left_tokens, right_tokens = DIFF_TOKEN.findall(a), DIFF_TOKEN.findall(b)
    left, right = [], []
    matcher = difflib.SequenceMatcher(None, left_tokens, right_tokens, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        old, new = "".join(left_tokens[i1:i2]), "".join(right_tokens[j1:j2])
        if tag == "equal":
            left.append(escape(old))
            right.append(escape(new))
            continue
        if old:
            left.append(format_html("<del>{}</del>", old))
        if new:
            right.append(format_html("<ins>{}</ins>", new))
    return mark_safe("".join(left)), mark_safe("".join(right))  # noqa: S308 - built from escaped parts


def side_by_side(a: str, b: str) -> list[dict]:
    """Rows of a side-by-side line diff: each side's line number, text (changed words marked) and kind."""
    left_lines, right_lines = (a or "").splitlines(), (b or "").splitlines()
    rows = []
    matcher = difflib.SequenceMatcher(None, left_lines, right_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                text = escape(left_lines[i1 + k])
                rows.append({"left_no": i1 + k + 1, "left": text, "left_kind": "same",
                             "right_no": j1 + k + 1, "right": text, "right_kind": "same"})  # fmt: skip
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            old = left_lines[i1 + k] if i1 + k < i2 else None
            new = right_lines[j1 + k] if j1 + k < j2 else None
            if old is not None and new is not None:
                old_html, new_html = word_diff(old, new)
            else:
                old_html, new_html = escape(old or ""), escape(new or "")
            rows.append(
                {
                    "left_no": i1 + k + 1 if old is not None else None,
                    "left": old_html,
                    "left_kind": "removed" if old is not None else "empty",
                    "right_no": j1 + k + 1 if new is not None else None,
                    "right": new_html,
                    "right_kind": "added" if new is not None else "empty",
                }
            )
    return rows
