"""The review API: score configs and annotation queues (operators write, viewers read), traces added by hand,
and the reviewer's flow (claim the next item, review it with a value per score config, skip), with bad values
refused naming the config and nothing half-stored."""

from __future__ import annotations

import pytest

from llmops.models import AnnotationItem, AnnotationQueue, Score, ScoreConfig
from tests.conftest import api_client_for
from tests.llmops.test_scores import generation, ingest, new_trace_id

pytestmark = pytest.mark.django_db

CONFIGS = "/api/v1/llmops/score-configs/"
QUEUES = "/api/v1/llmops/queues/"


@pytest.fixture
def configs(operator_api):
    for body in ({"name": "correct", "data_type": "boolean"},
                 {"name": "tone", "data_type": "categorical", "categories": ["polite", "neutral", "rude"]},
                 {"name": "stars", "data_type": "numeric", "min_value": 1, "max_value": 5}):  # fmt: skip
        assert operator_api.post(CONFIGS, body, format="json").status_code == 201
    return ["correct", "tone", "stars"]


@pytest.fixture
def traces(operator):
    ids = [new_trace_id() for _ in range(3)]
    ingest(api_client_for(operator), [generation(trace_id=t, question=f"Question {n}?", answer=f"Answer {n}.")
                                      for n, t in enumerate(ids)])  # fmt: skip
    return ids


def test_score_configs_are_listed_read_changed_and_deleted(operator_api, viewer_api, configs, operator, traces):
    listed = viewer_api.get(CONFIGS).json()
    assert [c["name"] for c in listed["results"]] == ["correct", "stars", "tone"]
    assert viewer_api.get(f"{CONFIGS}stars/").json()["max_value"] == 5
    assert viewer_api.patch(f"{CONFIGS}stars/", {"max_value": 10}, format="json").status_code == 403

    changed = operator_api.patch(f"{CONFIGS}stars/", {"max_value": 10, "description": "1 to 10"}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["max_value"] == 10 and changed.json()["min_value"] == 1
    assert ScoreConfig.objects.get(name="stars").clean_value(9) == (9.0, "")
    inverted = operator_api.patch(f"{CONFIGS}stars/", {"min_value": 20}, format="json")
    assert inverted.status_code == 400 and "min_value" in inverted.json()["detail"]
    assert ScoreConfig.objects.get(name="stars").min_value == 1

    # Once scores were recorded under it, a config keeps its name and data type.
    operator_api.post("/api/v1/llmops/feedback/", {"trace_id": traces[0], "name": "stars", "score": 4}, format="json")
    renamed = operator_api.patch(f"{CONFIGS}stars/", {"name": "rating"}, format="json")
    assert renamed.status_code == 400 and "name" in renamed.json()["errors"]
    retyped = operator_api.patch(f"{CONFIGS}stars/", {"data_type": "boolean"}, format="json")
    assert retyped.status_code == 400 and "data_type" in retyped.json()["errors"]
    # An unused one may change both.
    tone = operator_api.patch(f"{CONFIGS}tone/", {"name": "politeness", "data_type": "numeric"}, format="json")
    assert tone.status_code == 200 and tone.json()["categories"] == [] and tone.json()["data_type"] == "numeric"

    assert viewer_api.delete(f"{CONFIGS}correct/").status_code == 403
    assert operator_api.delete(f"{CONFIGS}correct/").status_code == 204
    assert not ScoreConfig.objects.filter(name="correct").exists()


def test_operators_make_a_queue_that_fills_from_its_filter_and_viewers_read_it(operator_api, viewer_api, configs,
                                                                                traces):  # fmt: skip
    refused = viewer_api.post(QUEUES, {"name": "triage", "score_configs": ["correct"]}, format="json")
    assert refused.status_code == 403
    created = operator_api.post(QUEUES, {"name": "triage", "description": "Support answers",
                                         "score_configs": ["correct", "tone"],
                                         "filter": {"service": "support-bot"}}, format="json")  # fmt: skip
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["score_configs"] == ["correct", "tone"] and body["filter"] == {"service": "support-bot"}
    assert body["counts"] == {"pending": 3, "done": 0, "skipped": 0}
    assert body["last_filled_at"] is not None and body["last_fill_added"] == 3

    listed = viewer_api.get(QUEUES).json()
    assert listed["count"] == 1 and listed["results"][0]["counts"]["pending"] == 3
    one = viewer_api.get(f"{QUEUES}{body['id']}/").json()
    assert one["name"] == "triage" and one["created_by"] == "otto"

    changed = operator_api.patch(f"{QUEUES}{body['id']}/", {"score_configs": ["stars"], "description": "x"},
                                 format="json")  # fmt: skip
    assert changed.status_code == 200 and changed.json()["score_configs"] == ["stars"]
    assert viewer_api.patch(f"{QUEUES}{body['id']}/", {"description": "y"}, format="json").status_code == 403
    assert viewer_api.delete(f"{QUEUES}{body['id']}/").status_code == 403
    assert operator_api.delete(f"{QUEUES}{body['id']}/").status_code == 204
    assert not AnnotationQueue.objects.exists() and not AnnotationItem.objects.exists()


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": "q", "score_configs": []}, "score_configs"),
        ({"name": "q", "score_configs": ["no-such-config"]}, "score_configs"),
        ({"name": "q", "score_configs": ["correct"], "filter": {"colour": "red"}}, "filter"),
        ({"name": "q", "score_configs": ["correct"], "filter": {"status": "broken"}}, "filter"),
        ({"name": "q", "score_configs": ["correct"], "filter": ["service"]}, "filter"),
        ({"name": "bad name!", "score_configs": ["correct"]}, "name"),
    ],
)
def test_a_bad_queue_is_refused_naming_the_field(operator_api, configs, body, named):
    refused = operator_api.post(QUEUES, body, format="json")
    assert refused.status_code == 400, refused.content
    assert named in refused.json()["errors"] and refused.json()["detail"].startswith(named)
    assert not AnnotationQueue.objects.exists()


def test_traces_are_added_by_hand_once_and_bad_ids_are_refused(operator_api, viewer_api, configs, traces):
    queue = operator_api.post(QUEUES, {"name": "manual", "score_configs": ["correct"]}, format="json").json()
    assert queue["counts"]["pending"] == 0 and queue["last_filled_at"] is None
    items = f"{QUEUES}{queue['id']}/items/"
    added = viewer_api.post(items, {"trace_ids": traces[:2]}, format="json")
    assert added.status_code == 201 and added.json() == {"added": 2, "counts": {"pending": 2, "done": 0, "skipped": 0}}
    again = viewer_api.post(items, {"trace_ids": [traces[0].upper(), traces[2]]}, format="json")
    assert again.json()["added"] == 1 and again.json()["counts"]["pending"] == 3

    bad = viewer_api.post(items, {"trace_ids": [traces[0], "not-a-trace"]}, format="json")
    assert bad.status_code == 400 and "'not-a-trace' is not a trace id" in bad.json()["detail"]
    assert viewer_api.post(items, {"trace_ids": []}, format="json").status_code == 400
    assert viewer_api.post(f"{QUEUES}999999/items/", {"trace_ids": traces}, format="json").status_code == 404
    listed = viewer_api.get(items).json()
    assert listed["count"] == 3 and [i["trace_id"] for i in listed["results"]] == traces[:2] + traces[2:]
    assert viewer_api.get(items, {"status": "done"}).json()["count"] == 0
    assert viewer_api.get(items, {"status": "nope"}).status_code == 400


def test_reviewers_claim_review_and_skip_until_the_queue_is_empty(operator, viewer, configs, traces):
    operator_api, viewer_api = api_client_for(operator), api_client_for(viewer)
    queue = operator_api.post(QUEUES, {"name": "triage", "score_configs": ["correct", "tone"],
                                       "filter": {"service": "support-bot"}}, format="json").json()  # fmt: skip
    claim = f"{QUEUES}{queue['id']}/claim/"

    first = operator_api.post(claim)
    second = viewer_api.post(claim)
    assert first.status_code == second.status_code == 200
    mine, theirs = first.json(), second.json()
    assert mine["trace_id"] != theirs["trace_id"] and mine["claimed_by"] == "otto"
    n = traces.index(mine["trace_id"])
    assert (mine["question"], mine["answer"], mine["model"]) == (f"Question {n}?", f"Answer {n}.", "gpt-4o-mini")
    assert operator_api.post(claim).json()["id"] == mine["id"]  # the caller's claim is kept

    review = f"{QUEUES}{queue['id']}/items/{mine['id']}/review/"
    taken = operator_api.post(f"{QUEUES}{queue['id']}/items/{theirs['id']}/review/",
                              {"values": {"correct": True}}, format="json")  # fmt: skip
    assert taken.status_code == 403 and "is reviewing this item" in taken.json()["detail"]

    # A bad value is refused naming its config, and nothing of the review is kept.
    bad = operator_api.post(review, {"values": {"correct": True, "tone": "angry"}}, format="json")
    assert bad.status_code == 400 and "values.tone" in bad.json()["errors"]
    assert "'angry' is not a category of 'tone': polite, neutral, rude" in bad.json()["detail"]
    unknown = operator_api.post(review, {"values": {"stars": 3}}, format="json")
    assert unknown.status_code == 400 and "not a score of this queue: stars" in unknown.json()["detail"]
    empty = operator_api.post(review, {"values": {"correct": ""}}, format="json")
    assert empty.status_code == 400 and "skip" in empty.json()["detail"]
    assert not Score.objects.exists() and AnnotationItem.objects.get(pk=mine["id"]).status == "pending"

    done = operator_api.post(review, {"values": {"correct": False, "tone": "rude"}, "comment": "made up a policy"},
                             format="json")  # fmt: skip
    assert done.status_code == 201, done.content
    answer = done.json()
    assert answer["item"]["status"] == "done" and answer["item"]["reviewed_by"] == "otto"
    assert [(s["name"], s["value"], s["string_value"], s["source"], s["author"], s["queue"])
            for s in answer["scores"]] == [("correct", 0.0, "false", "human", "otto", "triage"),
                                          ("tone", 2.0, "rude", "human", "otto", "triage")]  # fmt: skip
    assert {s["comment"] for s in answer["scores"]} == {"made up a policy"}
    again = operator_api.post(review, {"values": {"correct": True}}, format="json")
    assert again.status_code == 400 and "was done already" in again.json()["detail"]

    skipped = viewer_api.post(f"{QUEUES}{queue['id']}/items/{theirs['id']}/skip/")
    assert skipped.status_code == 200 and skipped.json()["status"] == "skipped"
    last = viewer_api.post(claim).json()
    assert last["trace_id"] not in (mine["trace_id"], theirs["trace_id"])
    viewer_api.post(f"{QUEUES}{queue['id']}/items/{last['id']}/review/", {"values": {"tone": "polite"}},
                    format="json")  # fmt: skip

    assert viewer_api.post(claim).status_code == 204
    counts = viewer_api.get(f"{QUEUES}{queue['id']}/").json()["counts"]
    assert counts == {"pending": 0, "done": 2, "skipped": 1}
    one = viewer_api.get(f"{QUEUES}{queue['id']}/items/{last['id']}/").json()
    assert one["status"] == "done" and one["reviewed_by"] == viewer.username
    assert viewer_api.get(f"{QUEUES}{queue['id'] + 1}/items/{last['id']}/").status_code == 404


def test_the_review_api_needs_a_token(client, configs):
    assert client.get(QUEUES).status_code == 401
    assert client.post(f"{QUEUES}1/claim/").status_code == 401
