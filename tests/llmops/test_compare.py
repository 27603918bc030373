"""llmops.compare on plain values: how items of two runs are matched, what counts as a regression, text diffs."""

from __future__ import annotations

from llmops import compare


def item(pk: int, source: int | None, country: str, expected: str = "") -> dict:
    return {"id": pk, "position": pk, "source_item_id": source, "input": {"country": country}, "expected_output":
            expected}  # fmt: skip


def test_the_same_snapshot_is_matched_by_position():
    a = [item(1, 10, "France"), item(2, 11, "Italy")]
    b = [item(5, 10, "France"), item(6, 11, "Italy")]
    pairs, how = compare.match_items(a, b, same_run=False)
    assert [(x["id"], y["id"]) for x, y in pairs] == [(1, 5), (2, 6)]
    assert how.startswith("position")


def test_different_snapshots_are_matched_by_dataset_item_and_the_rest_is_unmatched():
    a = [item(1, 10, "France"), item(2, 11, "Italy")]
    b = [item(7, 11, "Italy"), item(8, 12, "Spain")]
    pairs, how = compare.match_items(a, b, same_run=False)
    assert [(x and x["id"], y and y["id"]) for x, y in pairs] == [(1, None), (2, 7), (None, 8)]
    assert how.startswith("dataset item")


def test_imported_outputs_are_matched_by_input_and_expected_output():
    a = [item(1, None, "France", "Paris"), item(2, None, "Italy", "Rome")]
    b = [item(3, None, "Italy", "Rome"), item(4, None, "France", "Lyon")]
    pairs, how = compare.match_items(a, b, same_run=False)
    assert [(x and x["id"], y and y["id"]) for x, y in pairs] == [(1, None), (2, 3), (None, 4)]
    assert how == "equal input and expected output"


def test_two_columns_of_one_run_pair_each_item_with_itself():
    a = [item(1, 10, "France")]
    assert compare.match_items(a, a, same_run=True) == ([(a[0], a[0])], "the same run")


def test_verdicts_and_changes():
    assert compare.verdict(None) == "missing"
    assert compare.verdict((True, "", 1.0)) == "pass"
    assert compare.verdict((False, "", 0.2)) == "fail"
    assert compare.verdict((None, "HTTP 500", None)) == "error"
    assert compare.change("pass", "fail") == "regression"
    assert compare.change("pass", "error") == "regression"
    assert compare.change("error", "pass") == "improvement"
    assert compare.change("fail", "error") == "same"
    assert compare.change("missing", "pass") == "unmatched"


def test_rows_count_changes_and_give_the_score_delta():
    a, b = [item(1, 10, "France"), item(2, 11, "Japan")], [item(3, 10, "France"), item(4, 11, "Japan")]
    pairs, _ = compare.match_items(a, b, same_run=False)
    rows, counts = compare.compare_rows(pairs, {1: (True, "", 1.0), 2: (True, "", 0.9)},
                                        {3: (True, "", 1.0), 4: (False, "", 0.25)})  # fmt: skip
    assert [row["change"] for row in rows] == ["same", "regression"]
    assert rows[1]["delta"] == -0.65
    assert counts == {"same": 1, "regression": 1, "a_pass": 2, "b_pass": 1, "b_fail": 1}
    assert compare.shown(rows, "regressions") == [rows[1]]
    assert compare.shown(rows, "improvements") == []
    assert compare.shown(rows, "all") == rows
    assert (compare.pass_rate(rows, "a"), compare.pass_rate(rows, "b")) == (1.0, 0.5)


def test_a_pass_rate_leaves_out_errors_and_unmatched_items():
    rows = [
        {"before": "pass", "after": "error", "change": "regression"},
        {"before": "fail", "after": "pass", "change": "improvement"},
        {"before": "pass", "after": "missing", "change": "unmatched"},
    ]
    assert compare.pass_rate(rows, "a") == 0.5
    assert compare.pass_rate(rows, "b") == 1.0
    assert compare.pass_rate([], "a") is None


def test_word_diff_marks_changed_words_and_escapes_the_rest():
    left, right = compare.word_diff("Answer in one <b>sentence</b>.", "Answer in one <b>word</b>.")
    assert left == "Answer in one &lt;b&gt;<del>sentence</del>&lt;/b&gt;."
    assert right == "Answer in one &lt;b&gt;<ins>word</ins>&lt;/b&gt;."


def test_huge_texts_are_not_diffed_word_by_word():
    text = "x " * compare.WORD_DIFF_LIMIT
    assert compare.word_diff(text, text + "<y>") == (text, text + "&lt;y&gt;")


def test_side_by_side_pairs_lines_and_marks_added_and_removed_ones():
    rows = compare.side_by_side("one\ntwo\nthree", "one\n2\nthree\nfour")
    assert [(r["left_kind"], r["right_kind"]) for r in rows] == [
        ("same", "same"), ("removed", "added"), ("same", "same"), ("empty", "added"),
    ]  # fmt: skip
    assert (rows[1]["left"], rows[1]["right"]) == ("<del>two</del>", "<ins>2</ins>")
    assert (rows[3]["left_no"], rows[3]["right_no"], rows[3]["right"]) == (None, 4, "four")
