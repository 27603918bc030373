"""A reviewer works through an annotation queue with the keyboard only: digits score, Enter saves and opens the
next item, s skips it; the queue page then shows what was given and by whom."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from llmops.models import Score
from llmops.services import review as review_services
from llmops.services import scores as score_services
from opsportal.accounts.roles import Role
from tests.conftest import api_client_for
from tests.e2e.helpers import log_in
from tests.llmops.test_scores import generation, ingest, new_trace_id
from tests.portal.factories import UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.e2e]


def test_a_reviewer_scores_and_skips_items_with_the_keyboard(page):
    reviewer = UserFactory(username="rita", role=Role.OPERATOR)
    configs = [
        score_services.create_score_config(name="correct", actor=reviewer, data_type="boolean"),
        score_services.create_score_config(
            name="tone", actor=reviewer, data_type="categorical", categories=["polite", "neutral", "rude"]
        ),
    ]
    traces = [new_trace_id(), new_trace_id()]
    ingest(api_client_for(reviewer), [generation(trace_id=traces[0], question="Refund?", answer="No refunds, ever."),
                                      generation(trace_id=traces[1], question="Hi", answer="Hello!")])  # fmt: skip
    queue = review_services.create_queue(name="support", actor=reviewer, score_configs=configs)
    review_services.add_traces(queue=queue, trace_ids=traces, actor=reviewer)

    log_in(page, "rita")
    page.goto(f"/llmops/review/{queue.pk}/next/")
    expect(page.locator("#review-answer")).to_contain_text("No refunds, ever.")
    page.keyboard.press("0")  # correct: no
    page.keyboard.press("3")  # tone: rude
    page.keyboard.press("c")
    page.keyboard.type("refused a valid refund")
    page.keyboard.press("Escape")
    page.keyboard.press("Enter")

    expect(page.locator("#review-answer")).to_contain_text("Hello!")
    given = {s.name: s for s in Score.objects.filter(trace_id=traces[0])}
    assert given["correct"].string_value == "false" and given["tone"].string_value == "rude"
    assert given["tone"].author == reviewer and given["tone"].comment == "refused a valid refund"
    page.keyboard.press("s")

    expect(page.get_by_text("Nothing left to review in this queue.")).to_be_visible()
    expect(page.locator("#counts")).to_have_text("0 pending · 1 done · 1 skipped")
    expect(page.locator(f'[data-trace="{traces[0]}"]')).to_contain_text("tone=rude")
    assert not page.console_errors and not page.outside_requests
