"""Annotation queues: filled by filter or by hand, one item per reviewer at a time, scores stored with who gave
them, and reviewed or low-scoring cases exported into an evaluation dataset in one click."""

from __future__ import annotations

import pytest

from llmops.models import AnnotationItem, Dataset, Score
from llmops.services import review as review_services
from llmops.services import scores as score_services
from llmops.services.base import InvalidInput
from tests.conftest import api_client_for
from tests.llmops.test_scores import generation, ingest, new_trace_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def configs(operator):
    return [
        score_services.create_score_config(name="correct", actor=operator, data_type="boolean"),
        score_services.create_score_config(
            name="tone", actor=operator, data_type="categorical", categories=["polite", "neutral", "rude"]
        ),
    ]


@pytest.fixture
def traces(operator):
    ids = [new_trace_id() for _ in range(3)]
    ingest(api_client_for(operator), [generation(trace_id=t, question=f"Question {n}?", answer=f"Answer {n}.")
                                      for n, t in enumerate(ids)])  # fmt: skip
    return ids


def test_two_reviewers_never_get_the_same_item_and_scores_keep_who_gave_them(operator, viewer, configs, traces):
    queue = review_services.create_queue(name="support", actor=operator, score_configs=configs,
                                         filter={"service": "support-bot"})  # fmt: skip
    assert queue.items.count() == 3
    first = review_services.claim_next(queue=queue, actor=operator)
    second = review_services.claim_next(queue=queue, actor=viewer)
    assert first.trace_id != second.trace_id
    assert review_services.claim_next(queue=queue, actor=operator).pk == first.pk  # the claim is kept
    with pytest.raises(Exception, match="is reviewing this item"):
        review_services.submit_review(item=second, actor=operator, values={"correct": "true"})

    review_services.submit_review(item=first, actor=operator, values={"correct": "false", "tone": "rude"},
                                  comment="made up a policy")  # fmt: skip
    stored = {s.name: s for s in Score.objects.filter(trace_id=first.trace_id)}
    assert stored["correct"].value == 0.0 and stored["tone"].string_value == "rude"
    assert {s.author for s in stored.values()} == {operator} and stored["tone"].comment == "made up a policy"
    assert {s.source for s in stored.values()} == {"human"}
    with pytest.raises(InvalidInput, match="not a category"):
        review_services.submit_review(item=second, actor=viewer, values={"tone": "angry"})
    review_services.skip_item(item=second, actor=viewer)
    statuses = dict(AnnotationItem.objects.values_list("trace_id", "status"))
    assert statuses[first.trace_id] == "done" and statuses[second.trace_id] == "skipped"
    third = review_services.claim_next(queue=queue, actor=viewer)
    assert third.trace_id not in (first.trace_id, second.trace_id)


def test_reviewed_and_low_scoring_cases_become_dataset_items(operator, configs, traces):
    queue = review_services.create_queue(name="by-hand", actor=operator, score_configs=configs)
    assert review_services.add_traces(queue=queue, trace_ids=traces[:2], actor=operator) == 2
    assert review_services.add_traces(queue=queue, trace_ids=traces[:1], actor=operator) == 0
    item = review_services.claim_next(queue=queue, actor=operator)
    review_services.submit_review(item=item, actor=operator, values={"correct": "false"})
    dataset, added = review_services.export_to_dataset(cases=review_services.reviewed_traces(queue=queue),
                                                       dataset_name="regressions", actor=operator)  # fmt: skip
    assert added == 1
    row = dataset.items.get()
    n = traces.index(item.trace_id)
    assert row.input["input"] == f"Question {n}?" and row.input["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }
    assert row.expected_output == f"Answer {n}." and row.metadata["trace_id"] == item.trace_id
    assert row.metadata["scores"][0]["name"] == "correct"
    again = review_services.export_to_dataset(cases=review_services.reviewed_traces(queue=queue),
                                              dataset_name="regressions", actor=operator)  # fmt: skip
    assert again[1] == 0  # not twice

    score_services.submit_feedback(actor=operator, trace_id=traces[2], value="down")
    low = review_services.low_scoring_traces(name="user-feedback", below=0.5)
    _, added = review_services.export_to_dataset(cases=low, dataset_name="regressions", actor=operator)
    assert added == 1 and Dataset.objects.get(name="regressions").items.count() == 2


def test_the_pages_review_one_item_after_another(client, operator, configs, traces):
    client.force_login(operator)
    answer = client.post("/llmops/review/", {"form": "queue", "name": "triage", "service": "support-bot",
                                             "score_configs": [c.pk for c in configs]})  # fmt: skip
    queue = review_services.AnnotationQueue.objects.get(name="triage")
    assert answer.status_code == 302 and queue.items.count() == 3
    page = client.get(f"/llmops/review/{queue.pk}/next/")
    assert page.status_code == 200 and "Save and next" in page.content.decode()
    item = AnnotationItem.objects.get(claimed_by=operator)
    assert f"Answer {traces.index(item.trace_id)}." in page.content.decode()
    form = {"action": "save", "score-correct": "true", "score-tone": "polite", "comment": "ok"}
    saved = client.post(f"/llmops/review/{queue.pk}/items/{item.pk}/", form)
    assert saved.status_code == 302 and saved.url.endswith(f"/llmops/review/{queue.pk}/next/")
    assert Score.objects.filter(queue=queue, author=operator).count() == 2
    exported = client.post("/llmops/review/export/", {"queue": queue.pk, "dataset": "triage-reviewed"})
    assert exported.status_code == 302 and Dataset.objects.get(name="triage-reviewed").items.count() == 1
    listing = client.get(f"/llmops/review/{queue.pk}/").content.decode()
    assert "correct=true" in listing and "1 done" in listing


def test_a_trace_is_added_to_a_queue_from_its_page(client, operator, configs, traces):
    queue = review_services.create_queue(name="manual", actor=operator, score_configs=configs)
    client.force_login(operator)
    answer = client.post("/llmops/review/add/", {"queue": queue.pk, "trace_id": traces[0],
                                                 "next": f"/llmops/traces/{traces[0]}/"})  # fmt: skip
    assert answer.status_code == 302 and answer.url == f"/llmops/traces/{traces[0]}/"
    assert list(queue.items.values_list("trace_id", flat=True)) == [traces[0]]


def test_a_queue_with_a_filter_keeps_filling_with_the_traces_that_arrive(client, operator, configs, traces):
    queue = review_services.create_queue(name="support", actor=operator, score_configs=configs,
                                         filter={"service": "support-bot"})  # fmt: skip
    assert queue.items.count() == 3
    sender = api_client_for(operator)
    new = [new_trace_id() for _ in range(3)]
    ingest(sender, [generation(trace_id=t, question="Where is my parcel?", answer="Tomorrow.") for t in new])
    ingest(sender, [generation(trace_id=new_trace_id(), question="Invoice?", answer="Sent.")], service="billing")

    first = review_services.fill_queue(queue_id=queue.pk, limit=2)
    assert first.added == 2  # bounded per run: the rest comes with the next one
    assert review_services.fill_queue(queue_id=queue.pk).added == 1
    assert review_services.fill_queue(queue_id=queue.pk).added == 0  # nothing twice
    assert set(queue.items.values_list("trace_id", flat=True)) == set(traces + new)

    # A trace whose error arrives in a later export, after the fill passed it, still comes in.
    errors = review_services.create_queue(name="errors", actor=operator, score_configs=configs,
                                          filter={"status": "error"})  # fmt: skip
    late = new_trace_id()
    ingest(sender, [generation(trace_id=late, question="Refund?", answer="Let me check.")])
    assert review_services.fill_queue(queue_id=errors.pk).added == 0
    failed = {**generation(trace_id=late, question="Refund?", answer=""), "status": {"code": 2, "message": "timeout"}}
    ingest(sender, [failed])
    assert review_services.fill_queue(queue_id=errors.pk).added == 1
    assert list(errors.items.values_list("trace_id", flat=True)) == [late]
    assert review_services.fill_queue(queue_id=queue.pk).added == 1  # the support-bot queue takes it too

    client.force_login(operator)
    page = client.get(f"/llmops/review/{queue.pk}/").content.decode()
    assert "Last filled" in page and "1 trace added" in page
    listing = client.get("/llmops/review/").content.decode()
    assert "Fills every minute" in listing


def test_a_queue_without_a_filter_is_left_to_be_filled_by_hand(operator, configs, traces):
    queue = review_services.create_queue(name="by-hand", actor=operator, score_configs=configs)
    assert review_services.fill_queue(queue_id=queue.pk) is None
    assert queue.pk not in review_services.filling_queues() and queue.items.count() == 0


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_fills_a_queue_with_new_matching_traces_when_the_beat_task_runs(operator, worker):
    from llmops import tasks
    from tests.helpers import wait_for

    configs = [score_services.create_score_config(name="correct", actor=operator, data_type="boolean")]
    queue = review_services.create_queue(name="errors", actor=operator, score_configs=configs,
                                         filter={"service": "support-bot"})  # fmt: skip
    assert queue.items.count() == 0
    arrived = [new_trace_id() for _ in range(2)]
    ingest(api_client_for(operator), [generation(trace_id=t, question="Hi", answer="Hello.") for t in arrived])

    tasks.fill_review_queues.delay()

    assert wait_for(lambda: queue.items.count() == 2, timeout=30)
    assert set(queue.items.values_list("trace_id", flat=True)) == set(arrived)
    queue.refresh_from_db()
    assert queue.last_filled_at is not None and queue.last_fill_added == 2
    tasks.fill_review_queues.delay()
    assert wait_for(lambda: review_services.AnnotationQueue.objects.get(pk=queue.pk).last_fill_added == 0, timeout=30)
    assert queue.items.count() == 2
