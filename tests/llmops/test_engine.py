"""The run engine against the local OpenAI-compatible server: generation, scoring, limits, retries, costs,
cancellation, resume, imported outputs, and the release gate that finished runs open."""

from __future__ import annotations

import datetime
import threading
import time

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from llmops import engine, services
from llmops.models import Dataset, EvalRun, LabelMove, RunResult
from opsportal.audit.models import AuditEntry

from . import factories

pytestmark = pytest.mark.django_db

CONTAINS_CAPITAL = {"type": "icontains", "config": {"value": "capital"}}
EQUALS_EXPECTED = {"type": "equals"}


def make_dataset(name: str, count: int, actor) -> Dataset:
    """`count` items, each a country of its own expecting "x"."""
    return factories.dataset(actor=actor, name=name, rows=[(f"Country {index}", "x") for index in range(count)])


def start(dataset, version, model, actor, scorers=None, **options) -> EvalRun:
    """A queued run scored by "contains capital" unless told otherwise."""
    return factories.run(version=version, model=model, dataset=dataset, actor=actor,
                         scorers=scorers or [CONTAINS_CAPITAL], **options)  # fmt: skip


def results(run: EvalRun) -> list[RunResult]:
    return list(RunResult.objects.filter(run=run).select_related("item").order_by("item__position"))


def expected_cost(result: RunResult, input_price: float, output_price: float) -> float:
    return (result.input_tokens * input_price + result.output_tokens * output_price) / 1_000_000


def test_a_run_generates_scores_and_prices_every_cell(fake_llm, llm, capitals_prompt, capitals_dataset, operator):
    fake_llm.answers["capital of France"] = "Paris"
    fake_llm.answers["capital of Italy"] = "Milan"  # wrong: fails the equals scorer
    fake_llm.answers["capital of Spain"] = "Madrid"
    fake_llm.answers["capital of Japan"] = "Tokyo"
    version = capitals_prompt.versions.get()
    run = start(
        capitals_dataset,
        version,
        llm,
        operator,
        scorers=[EQUALS_EXPECTED, {"type": "word-count", "config": {"max": 3}}],
    )

    assert engine.execute(run.pk) == "completed"

    run.refresh_from_db()
    assert (run.status, run.total, run.done, run.errors, run.passed) == ("completed", 4, 4, 0, 3)
    assert run.pass_rate == 0.75 and run.started_at and run.finished_at and run.lease_owner == ""
    rows = results(run)
    assert [r.output for r in rows] == ["Paris", "Milan", "Madrid", "Tokyo"]
    assert [r.passed for r in rows] == [True, False, True, True]
    milan = rows[1]
    assert [s["type"] for s in milan.scores] == ["equals", "word-count"]
    assert milan.scores[0]["passed"] is False and milan.scores[1]["passed"] is True and milan.score == 0.5
    assert milan.rendered_messages[1] == {"role": "user", "content": "What is the capital of Italy?"}
    assert all(r.finish_reason == "stop" and r.attempts == 1 and r.latency_ms > 0 for r in rows)
    # The version's parameters go to the provider with every request, and the key the admin entered.
    bodies = [request["body"] for request in fake_llm.chat_requests]
    assert len(bodies) == 4 and all(b["model"] == "test-model" and b["temperature"] == 0 for b in bodies)
    assert set(fake_llm.api_keys) == {"Bearer sk-test-123"}
    # Cost: tokens x the model's price (1 USD per 1M input tokens, 2 USD per 1M output tokens).
    for row in rows:
        assert row.input_tokens > 0 and row.output_tokens == 1
        assert row.cost == pytest.approx(expected_cost(row, 1, 2))
    assert run.cost == pytest.approx(sum(r.cost for r in rows))
    column = run.columns.get()
    assert column.pass_rate == 0.75 and column.stats["scorers"]["equals"]["pass_rate"] == 0.75
    assert run.summary["columns"][0]["scorers"]["word-count"]["pass_rate"] == 1.0


def test_costs_follow_the_price_table_for_models_added_without_prices(
    fake_llm, provider, capitals_prompt, capitals_dataset, admin_user, operator
):
    services.set_price(model_name="acme-*", input_per_million="0.5", output_per_million="1.5", actor=admin_user)
    services.set_price(model_name="acme-large", input_per_million="3", output_per_million="15", actor=admin_user)
    small = services.add_model(provider=provider, name="acme-small", actor=admin_user)
    large = services.add_model(provider=provider, name="acme-large", actor=admin_user)
    assert (float(small.input_per_million), float(small.output_per_million)) == (0.5, 1.5)  # the prefix entry
    assert (float(large.input_per_million), float(large.output_per_million)) == (3, 15)  # the exact entry wins
    run = services.create_run(
        dataset=capitals_dataset,
        prompt_versions=[capitals_prompt.versions.get()],
        models=[small, large],
        scorers=[CONTAINS_CAPITAL],
        actor=operator,
    )

    engine.execute(run.pk)

    rows = list(RunResult.objects.filter(run=run).select_related("column__model"))
    assert len(rows) == 8
    for row in rows:
        prices = (0.5, 1.5) if row.column.model == small else (3, 15)
        assert row.cost == pytest.approx(expected_cost(row, *prices)) and row.cost > 0
    run.refresh_from_db()
    assert run.cost == pytest.approx(sum(row.cost for row in rows))


def test_requests_in_flight_never_exceed_the_provider_bound(fake_llm, llm, capitals_prompt, operator):
    fake_llm.delay = 0.05
    dataset = make_dataset("twenty", 20, operator)
    run = start(dataset, capitals_prompt.versions.get(), llm, operator)

    engine.execute(run.pk)

    assert RunResult.objects.filter(run=run).count() == 20
    assert fake_llm.max_in_flight == 4  # the provider's max_concurrency, and it is used in full


def test_a_run_with_a_lower_concurrency_stays_below_it(fake_llm, llm, capitals_prompt, operator):
    fake_llm.delay = 0.05
    dataset = make_dataset("twenty", 20, operator)
    run = start(dataset, capitals_prompt.versions.get(), llm, operator, concurrency=2)

    engine.execute(run.pk)

    assert RunResult.objects.filter(run=run).count() == 20
    assert fake_llm.max_in_flight == 2


def test_429_is_retried_no_earlier_than_retry_after(fake_llm, llm, capitals_prompt, operator):
    dataset = make_dataset("one", 1, operator)
    fake_llm.fail(1, status=429, retry_after=0.4)
    run = start(dataset, capitals_prompt.versions.get(), llm, operator)

    engine.execute(run.pk)

    first, retry = fake_llm.chat_requests
    assert retry["at"] - first["at"] >= 0.4
    result = RunResult.objects.get(run=run)
    assert result.error == "" and result.attempts == 2 and result.passed


def test_500_is_retried_with_growing_backoff_then_succeeds(fake_llm, llm, capitals_prompt, operator, settings):
    settings.LLMOPS_RETRY_BASE_SECONDS = 0.1
    dataset = make_dataset("one", 1, operator)
    fake_llm.fail(2, status=500)
    run = start(dataset, capitals_prompt.versions.get(), llm, operator)

    engine.execute(run.pk)

    times = [request["at"] for request in fake_llm.chat_requests]
    assert len(times) == 3
    # Equal jitter: at least half of 0.1 s, then at least half of 0.2 s.
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1
    result = RunResult.objects.get(run=run)
    assert result.error == "" and result.attempts == 3 and result.output


def test_a_400_is_not_retried_and_its_message_is_the_cells_error(fake_llm, llm, capitals_prompt, operator):
    dataset = make_dataset("one", 1, operator)
    fake_llm.fail(1, status=400, message="Unsupported value: 'temperature'")
    run = start(dataset, capitals_prompt.versions.get(), llm, operator)

    assert engine.execute(run.pk) == "completed"

    assert len(fake_llm.chat_requests) == 1
    result = RunResult.objects.get(run=run)
    assert result.error == "HTTP 400: Unsupported value: 'temperature'" and result.attempts == 1
    assert result.passed is None and result.scores == []
    run.refresh_from_db()
    assert (run.done, run.errors, run.pass_rate) == (1, 1, None)


def test_when_retries_run_out_the_error_is_stored_and_the_run_completes(
    fake_llm, llm, capitals_prompt, capitals_dataset, operator, admin_user
):
    services.update_provider(provider=llm.provider, actor=admin_user, max_retries=2)
    fake_llm.fail(3, status=503, message="overloaded")
    # concurrency 1: the items go in order, so the first one meets all three failures.
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator, concurrency=1)

    assert engine.execute(run.pk) == "completed"

    rows = results(run)
    assert rows[0].error == "HTTP 503: overloaded (gave up after 3 attempts)" and rows[0].attempts == 3
    assert all(row.error == "" for row in rows[1:])
    assert len(fake_llm.chat_requests) == 3 + 3
    run.refresh_from_db()
    assert (run.status, run.done, run.errors, run.passed, run.pass_rate) == ("completed", 4, 1, 3, 1.0)


def test_a_missing_variable_is_the_cells_error_and_costs_no_call(
    fake_llm, llm, capitals_prompt, capitals_dataset, operator
):
    services.add_item(dataset=capitals_dataset, actor=operator, input={"city": "Lyon"}, expected_output="x")
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator)

    engine.execute(run.pk)

    rows = results(run)
    broken = rows[-1]
    assert broken.error.startswith("template: ") and "country" in broken.error
    assert broken.attempts == 0 and broken.output == "" and broken.cost is None
    assert len(fake_llm.chat_requests) == 4  # only the four good items were sent
    run.refresh_from_db()
    assert (run.done, run.errors) == (5, 1)


@pytest.mark.django_db(transaction=True)
def test_cancelling_stops_a_run_midway(fake_llm, llm, capitals_prompt, operator):
    fake_llm.delay = 0.2
    dataset = make_dataset("forty", 40, operator)
    run = start(dataset, capitals_prompt.versions.get(), llm, operator, concurrency=2)

    def cancel_after_a_few() -> None:
        try:
            deadline = time.monotonic() + 20
            while RunResult.objects.filter(run_id=run.pk).count() < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            services.cancel_run(run=EvalRun.objects.get(pk=run.pk), actor=operator)
        finally:
            connection.close()

    canceller = threading.Thread(target=cancel_after_a_few)
    canceller.start()
    status = engine.execute(run.pk)
    canceller.join()

    assert status == "cancelled"
    run.refresh_from_db()
    assert run.status == "cancelled" and run.finished_at is not None
    stored = RunResult.objects.filter(run=run).count()
    # Cancellation is noticed at the next flush (every 0.5 s): a few more answers, far from all 40.
    assert 4 <= stored < 30 and run.done == stored
    assert len(fake_llm.chat_requests) < 30


def test_a_queued_run_cancelled_before_a_worker_starts_makes_no_call(
    fake_llm, llm, capitals_prompt, capitals_dataset, operator
):
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator)
    services.cancel_run(run=run, actor=operator)

    assert engine.execute(run.pk) == "busy"  # nothing left to execute

    run.refresh_from_db()
    assert run.status == "cancelled" and fake_llm.chat_requests == []


def test_resuming_generates_only_the_missing_results(fake_llm, llm, capitals_prompt, capitals_dataset, operator):
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator)
    column = run.columns.get()
    items = list(run.items.order_by("position"))
    # A worker stored two results and died: its lease ran out.
    kept = [
        RunResult.objects.create(
            run=run, item=item, column=column, output="The capital is here.", passed=True, score=1.0, scores=[]
        )
        for item in items[:2]
    ]
    EvalRun.objects.filter(pk=run.pk).update(
        status="running",
        started_at=timezone.now(),
        lease_owner="dead-host:123",
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1),
    )
    assert run.pk in engine.stalled_runs()

    assert engine.execute(run.pk) == "completed"

    assert len(fake_llm.chat_requests) == 2
    asked = [request["body"]["messages"][1]["content"] for request in fake_llm.chat_requests]
    assert sorted(asked) == ["What is the capital of Japan?", "What is the capital of Spain?"]
    rows = results(run)
    assert len(rows) == 4 and len({(r.item_id, r.column_id) for r in rows}) == 4
    assert [r.pk for r in rows[:2]] == [r.pk for r in kept] and rows[0].output == "The capital is here."
    run.refresh_from_db()
    assert (run.status, run.done, run.passed) == ("completed", 4, 4)
    assert run.pk not in engine.stalled_runs()
    # Executing a finished run again does nothing, and the database refuses a second result for a cell.
    assert engine.execute(run.pk) == "busy" and len(fake_llm.chat_requests) == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        RunResult.objects.create(run=run, item=items[0], column=column, output="again")


def test_a_slow_worker_that_lost_its_lease_stores_nothing_twice(
    fake_llm, llm, capitals_prompt, capitals_dataset, operator
):
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator)
    assert engine.acquire_lease(run.pk, "slow-host:1")
    EvalRun.objects.filter(pk=run.pk).update(lease_expires_at=timezone.now() - datetime.timedelta(seconds=1))
    assert engine.execute(run.pk, owner="new-host:2") == "completed"
    stored = {(r.item_id, r.column_id): r.output for r in RunResult.objects.filter(run=run)}

    # The slow worker was alive after all and now stores what it generated for the same cells.
    late = engine.RunState(run, "slow-host:1")
    late.pending = [
        RunResult(run_id=run.pk, item_id=item, column_id=column, output="late answer") for item, column in stored
    ]
    engine._flush(late)

    assert {(r.item_id, r.column_id): r.output for r in RunResult.objects.filter(run=run)} == stored
    run.refresh_from_db()
    assert run.done == 4


def test_a_run_leased_by_a_live_worker_is_left_alone(fake_llm, llm, capitals_prompt, capitals_dataset, operator):
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator)
    assert engine.acquire_lease(run.pk, "other-host:1")

    assert engine.execute(run.pk, owner="this-host:2") == "busy"

    assert fake_llm.chat_requests == [] and run.pk not in engine.stalled_runs()


def test_imported_outputs_are_scored_without_calling_a_model(fake_llm, operator):
    data = (
        b'{"input": {"country": "France"}, "expected_output": "Paris", "output": "Paris"}\n'
        b'{"input": {"country": "Italy"}, "expected_output": "Rome", "output": "Milan"}\n'
        b'{"input": {"country": "Spain"}, "expected_output": "Madrid", "output": "Madrid"}\n'
    )
    run, parsed = services.create_score_run(
        data=data, filename="outputs.jsonl", scorers=[EQUALS_EXPECTED], actor=operator, name="production answers"
    )
    assert parsed.ok and run.kind == "score" and run.total == 3

    assert engine.execute(run.pk) == "completed"

    assert fake_llm.chat_requests == []
    rows = results(run)
    assert [(r.output, r.passed, r.attempts) for r in rows] == [
        ("Paris", True, 0),
        ("Milan", False, 0),
        ("Madrid", True, 0),
    ]
    run.refresh_from_db()
    assert run.pass_rate == pytest.approx(2 / 3) and run.cost == 0


def test_an_llm_rubric_asks_the_judge_model(fake_llm, llm, capitals_prompt, capitals_dataset, operator):
    fake_llm.answers["<rubric>"] = '{"reason": "names a city", "score": 0.8}'
    rubric = {"type": "llm-rubric", "config": {"rubric": "Names the capital city."}}
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator, scorers=[rubric], judge_model=llm)

    engine.execute(run.pk)

    assert len(fake_llm.chat_requests) == 8  # four answers, four gradings
    rows = results(run)
    assert all(r.passed and r.score == 0.8 and r.scores[0]["reason"] == "names a city" for r in rows)


def test_rescoring_applies_new_scorers_to_stored_outputs(fake_llm, llm, capitals_prompt, capitals_dataset, operator):
    run = start(capitals_dataset, capitals_prompt.versions.get(), llm, operator)
    engine.execute(run.pk)
    requests = len(fake_llm.chat_requests)

    changed = engine.rescore(run, [{"type": "icontains", "config": {"value": "paris"}}])

    assert changed == 4 and len(fake_llm.chat_requests) == requests
    assert [r.passed for r in results(run)] == [True, False, False, False]
    run.refresh_from_db()
    assert run.passed == 1 and run.scorers[0]["config"]["value"] == "paris"


# --- The release gate -----------------------------------------------------------------------------------------------


@pytest.fixture
def gated(capitals_prompt, capitals_dataset, admin_user):
    return services.update_prompt(
        prompt=capitals_prompt, actor=admin_user, gate_dataset=capitals_dataset, gate_min_pass_rate=0.75
    )


def test_the_gate_refuses_until_a_finished_run_passes(fake_llm, llm, gated, capitals_dataset, operator):
    version = gated.versions.get()
    with pytest.raises(services.GateRefused, match="No finished run of capitals v1"):
        services.move_label(prompt=gated, label="production", version=version, actor=operator)

    for country, city in [("France", "Paris"), ("Italy", "Milan"), ("Spain", "Barcelona"), ("Japan", "Tokyo")]:
        fake_llm.answers[f"capital of {country}"] = city
    weak = start(capitals_dataset, version, llm, operator, scorers=[EQUALS_EXPECTED])
    engine.execute(weak.pk)
    with pytest.raises(services.GateRefused, match=r"passed 50\.0%, below the gate of 75%"):
        services.move_label(prompt=gated, label="production", version=version, actor=operator)
    # Other labels are not gated.
    services.move_label(prompt=gated, label="staging", version=version, actor=operator)

    fake_llm.answers.update({"capital of Italy": "Rome", "capital of Spain": "Madrid"})
    good = start(capitals_dataset, version, llm, operator, scorers=[EQUALS_EXPECTED])
    engine.execute(good.pk)
    label = services.move_label(prompt=gated, label="production", version=version, actor=operator)

    assert label.version == version and services.resolve(name="capitals") == version
    allowed, reason, run = services.gate_check(prompt=gated, version=version)
    assert allowed and run.pk == good.pk and "100.0%" in reason
    move = LabelMove.objects.filter(label="production").get()
    assert not move.gate_overridden and move.actor == operator


def test_only_an_admin_overrides_the_gate_with_a_reason_and_it_is_audited(gated, operator, admin_user):
    version = gated.versions.get()
    with pytest.raises(services.NotAllowed, match="Only an admin may override"):
        services.move_label(
            prompt=gated, label="production", version=version, actor=operator, override=True, reason="hotfix"
        )
    with pytest.raises(services.LLMOpsError, match="reason: say why"):
        services.move_label(prompt=gated, label="production", version=version, actor=admin_user, override=True)

    services.move_label(
        prompt=gated,
        label="production",
        version=version,
        actor=admin_user,
        override=True,
        reason="Incident 42: the old prompt leaks PII",
    )

    move = LabelMove.objects.get(label="production")
    assert move.gate_overridden and move.actor == admin_user and move.reason == "Incident 42: the old prompt leaks PII"
    entry = AuditEntry.objects.get(action="override_gate")
    assert entry.actor == admin_user and "Incident 42" in entry.message
    assert entry.changes == {"label:production": [None, 1]}


def test_a_run_of_a_long_named_prompt_and_model_gets_a_label_and_name_that_fit(operator):
    """Prompt names take 200 characters and model names 100: the generated column label and run name are cut."""
    long_provider = factories.provider(base_url="http://127.0.0.1:9/v1", actor=operator)
    long_model = factories.model(provider=long_provider, actor=operator, name="m" * 100)
    long_prompt = factories.prompt(actor=operator, name="p" * 200)
    data = factories.dataset(actor=operator, name="d" * 150)
    run = factories.run(version=long_prompt.versions.get(), model=long_model, dataset=data, actor=operator)
    column = run.columns.get()
    assert len(column.label) == 300 and column.label.endswith("…")
    assert column.label.startswith("p" * 200)
    assert len(run.name) <= 200 and run.name.endswith("…")
