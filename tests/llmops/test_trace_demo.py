"""The demo's week of support-bot traces as a user finds it after `seed_demo`: the traces list over seven days,
a conversation of several turns, a customer's page, the dashboards, the guard policy's violations, the review
queue, the online evaluator and the monitors; and a second seed that adds nothing."""

from __future__ import annotations

import datetime
import re

import pytest
from django.apps import apps
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from llmops.models import (
    AnnotationItem,
    AnnotationQueue,
    EndUser,
    Evaluator,
    GuardCall,
    GuardPolicy,
    LLMMonitor,
    Score,
    Session,
    Span,
    Trace,
)
from llmops.trace_demo import EVALUATOR, QUEUE, SERVICE
from opsportal.accounts import services as accounts
from opsportal.portal.management.commands.seed_demo import DEMO_USERS

from .pages import json_script, text_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def seeded() -> dict[str, User]:
    """The demo users and the LLMOps demo (prompts, runs, guard policy, then the week of traces)."""
    for username, first, last, role, _about in DEMO_USERS:
        accounts.create_user(username=username, first_name=first, last_name=last, role=role, actor=None,
                             email=f"{username}@example.com")  # fmt: skip
    users = User.objects.in_bulk([username for username, *_ in DEMO_USERS], field_name="username")
    report = apps.get_app_config("llmops").seed_demo(users=users)
    assert "support-bot traces created" in report
    return users


def test_the_traces_list_and_dashboards_show_a_week_of_the_support_bot(client, viewer, seeded):
    client.force_login(viewer)
    traces = Trace.objects.filter(service=SERVICE)
    assert 1500 <= traces.count() <= 3000
    now = timezone.now()
    days = {(now - trace.start_time).days for trace in traces.only("start_time")}
    assert set(range(7)) <= days <= set(range(8))

    page = client.get(reverse("llmops:traces"), {"service": SERVICE})
    assert page.status_code == 200
    shown = set(re.findall(r"/llmops/traces/([0-9a-f]{32})/", page.content.decode()))
    assert len(shown) >= 20 and shown <= set(traces.values_list("trace_id", flat=True))
    # Six days back the list still has the bot's traces: the week is there, not just today.
    until = (now - datetime.timedelta(days=6)).strftime("%Y-%m-%dT%H:%M:%S")
    old = client.get(reverse("llmops:traces"), {"service": SERVICE, "until": until})
    assert re.search(r"/llmops/traces/[0-9a-f]{32}/", old.content.decode())

    # Two days ago from 13:00 to 14:30 UTC most traces failed; over the week errors are a small share.
    midnight = now.astimezone(datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    burst_start = midnight - datetime.timedelta(days=2, hours=-13)
    burst = traces.filter(start_time__gte=burst_start, start_time__lt=burst_start + datetime.timedelta(minutes=90))
    assert burst.filter(errors__gt=0).count() > 0.3 * burst.count() > 0
    assert traces.filter(errors__gt=0).count() < traces.count() * 0.1
    listed = client.get(reverse("llmops:traces"), {"service": SERVICE, "status": "error"})
    assert len(set(re.findall(r"/llmops/traces/([0-9a-f]{32})/", listed.content.decode()))) >= 20

    dashboards = client.get(reverse("llmops:dashboards"), {"service": SERVICE, "window": "7d"})
    assert dashboards.status_code == 200
    by_model = json_script(dashboards, "trace-cost-model")
    models = {series["name"] for series in by_model["data"]}
    assert {"gpt-4o-mini-2024-07-18", "gpt-4o-2024-08-06"} <= models
    by_prompt = json_script(dashboards, "trace-cost-prompt")
    assert {"support-answer v1", "support-answer v2"} <= {series["name"] for series in by_prompt["data"]}

    # A generation's page shows its chat, tokens and priced cost; the guard's span sits in the same trace.
    generation = Span.objects.filter(service=SERVICE, model__startswith="gpt-4o-mini", cost__gt=0).first()
    trace_page = client.get(reverse("llmops:trace", args=[generation.trace_id]), {"span": generation.span_id})
    text = text_of(trace_page)
    assert trace_page.status_code == 200 and "support-answer" in text and "You are" in text
    assert "guard input (support-bot)" in text and "retrieve documents" in text


def test_a_conversation_and_its_customer_have_their_pages(client, viewer, seeded):
    client.force_login(viewer)
    assert EndUser.objects.count() == 60
    session = Session.objects.filter(service=SERVICE).annotate(turns=Count("traces")).filter(turns__gte=4).first()
    assert session is not None
    page = client.get(reverse("llmops:session", args=[session.pk]))
    assert page.status_code == 200
    text = text_of(page)
    # Each turn a question and its answer (a turn the guard refused, the last one, has no generation).
    assert page.content.decode().count('data-role="user"') >= session.turns - 1 >= 3
    first = session.traces.order_by("start_time").first().span_rows().get(name="POST /chat")
    assert first.output in text
    assert session.end_user.external_id in text

    customer = EndUser.objects.order_by("-generations").first()
    page = client.get(reverse("llmops:user", args=[customer.pk]))
    text = text_of(page)
    assert page.status_code == 200 and customer.external_id in text
    assert customer.sessions.count() >= 5
    assert customer.sessions.order_by("-last_seen").first().key in text


def test_the_guard_policy_queue_evaluator_and_monitors_show_what_happened(client, viewer, seeded):
    client.force_login(viewer)
    policy = GuardPolicy.objects.get(name="support-bot")
    calls = GuardCall.objects.filter(policy=policy).exclude(trace_id="")
    assert calls.count() == Trace.objects.filter(service=SERVICE).count()
    assert calls.filter(allowed=False).exists() and calls.filter(redacted=True).exists()
    # The guard's calls happened during the week, each beside its trace.
    assert calls.order_by("at").first().at < timezone.now() - datetime.timedelta(days=6)
    page = client.get(reverse("llmops:guardrail", args=[policy.pk]), {"days": "7"})
    text = text_of(page)
    assert page.status_code == 200
    assert "injection" in text or "toxicity" in text or "banned" in text
    chart = json_script(page, "violation-chart")
    assert len(chart["data"][0]["x"]) > 24  # hourly buckets across the week

    queue = AnnotationQueue.objects.get(name=QUEUE)
    pending = queue.items.filter(status=AnnotationItem.Status.PENDING).count()
    done = queue.items.filter(status=AnnotationItem.Status.DONE).count()
    assert pending > 0 and done > 0
    page = client.get(reverse("llmops:review-queue", args=[queue.pk]))
    assert f"{pending} pending · {done} done" in text_of(page)
    reviewed = Score.objects.filter(queue=queue, source=Score.Source.HUMAN)
    assert set(reviewed.values_list("name", flat=True)) == {"helpfulness", "correct"}
    thumbs = Score.objects.filter(source=Score.Source.FEEDBACK, name="user-feedback")
    assert thumbs.filter(string_value="false").exists() and thumbs.filter(string_value="true").exists()

    evaluator = Evaluator.objects.get(name=EVALUATOR)
    assert evaluator.scores.count() > 100
    page = client.get(reverse("llmops:evaluator", args=[evaluator.pk]))
    assert page.status_code == 200 and EVALUATOR in text_of(page)

    monitors = LLMMonitor.objects.filter(name__startswith="Support bot")
    assert monitors.count() == 3 and not monitors.filter(state=LLMMonitor.State.NEW).exists()
    page = client.get(reverse("llmops:monitors"))
    text = text_of(page)
    assert all(monitor.name in text for monitor in monitors)


def test_seeding_again_adds_nothing(capsys):
    call_command("seed_demo")
    counts = [model.objects.count() for model in (Trace, Span, Session, EndUser, GuardCall, Score, AnnotationItem,
                                                  LLMMonitor, Evaluator)]  # fmt: skip
    assert counts[0] > 1500
    assert "support-bot traces created" in capsys.readouterr().out
    call_command("seed_demo")
    assert [model.objects.count() for model in (Trace, Span, Session, EndUser, GuardCall, Score, AnnotationItem,
                                                LLMMonitor, Evaluator)] == counts  # fmt: skip
    assert "support-bot traces already there" in capsys.readouterr().out
