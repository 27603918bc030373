"""Registering models and versions writes everything a change writes, whichever way it is sent.

On PostgreSQL `create_model` and `create_version` are one round trip (`mlops.services.statements`);
elsewhere they are separate queries. Both must leave the same history, audit entries and webhook
deliveries, number versions without gaps or duplicates under concurrency, and refuse what they refused.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections, transaction

from mlops import services
from mlops.models import ModelVersion, RegisteredModel, VersionEvent, Webhook, WebhookDelivery
from opsportal.audit.models import AuditEntry
from opsportal.audit.services import entry as audit_entry

pytestmark = pytest.mark.django_db

EVENT_FIELDS = ("kind", "message", "data", "actor_id", "actor_name")
AUDIT_FIELDS = ("action", "app_label", "model", "object_repr", "message", "changes", "actor_id", "actor_name", "ip")


def what_was_written(model_name: str) -> dict:
    """The history, audit entries and webhook payloads of one model, without ids and times."""
    events = VersionEvent.objects.filter(model__name=model_name).order_by("id")
    audit = AuditEntry.objects.filter(app_label="mlops", object_repr__startswith=model_name).order_by("id")
    deliveries = WebhookDelivery.objects.filter(payload__model__name=model_name).order_by("id")
    return {
        "events": [
            {**{f: getattr(e, f) for f in EVENT_FIELDS}, "version": e.version.version if e.version else None}
            for e in events
        ],
        "audit": [{f: getattr(a, f) for f in AUDIT_FIELDS} for a in audit],
        "deliveries": [
            (d.webhook.name, d.event, d.status, d.target, {k: v for k, v in d.payload.items() if k != "timestamp"})
            for d in deliveries
        ],
    }


@pytest.fixture
def hooks(db, hooks_allowed):
    """Webhooks for every event, for versions only, for one other model, and a disabled one."""
    other = services.create_model(name="elsewhere", actor=None)
    Webhook.objects.create(name="all", url="https://hooks.example.com/all")
    Webhook.objects.create(name="versions", url="https://hooks.example.com/v", events=["version_created"])
    Webhook.objects.create(name="other model", url="https://hooks.example.com/o", model=other)
    Webhook.objects.create(name="off", url="https://hooks.example.com/off", enabled=False)


def register(name: str, actor) -> None:
    services.create_model(name=name, actor=actor, description="d", tags={"team": "growth", "Owner": "ds"})
    for source in ("s3://m/1", ""):
        services.create_version(
            model=name, actor=actor, source=source, run_id="r1", tags={"framework": "xgboost"}, metrics={"auc": 0.9}
        )


def renamed(value: object, old: str, new: str) -> object:
    """`value` with model `old`'s name in its texts and URLs replaced by `new`."""
    if isinstance(value, str) and value != old:
        return value.replace(f"/{old}/", f"/{new}/").replace(f" {old} ", f" {new} ").replace(f"{old} v", f"{new} v")
    if isinstance(value, dict):
        return {k: renamed(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(renamed(v, old, new) for v in value)
    return new if value == old else value


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement path is PostgreSQL's")
def test_one_statement_and_separate_queries_write_the_same(operator, hooks, monkeypatch):
    register("one", operator)
    with monkeypatch.context() as patched:
        # The separate queries that other databases get, on this one.
        patched.setattr(connection, "vendor", "other")
        register("two", operator)
    one, two = what_was_written("one"), what_was_written("two")
    assert renamed(one, "one", "two") == two
    assert [e["message"] for e in one["events"]] == [
        "Registered model one created.",
        "Version 1 of one created from s3://m/1.",
        "Version 2 of one created from no source.",
    ]
    assert [a["object_repr"] for a in one["audit"]] == ["one", "one v1", "one v2"]
    # model_created to "all"; each version_created to "all" and "versions"; nothing to the disabled hook
    # or to the other model's.
    assert [(hook, event) for hook, event, *_ in one["deliveries"]] == [
        ("all", "model_created"), ("all", "version_created"), ("versions", "version_created"),
        ("all", "version_created"), ("versions", "version_created"),
    ]  # fmt: skip
    version_payload = one["deliveries"][-1][4]["version"]
    assert version_payload["version"] == "2" and version_payload["url"].endswith("/mlops/models/one/versions/2/")
    assert {d[2] for d in one["deliveries"]} == {"pending"}
    audit_row = AuditEntry.objects.get(model="modelversion", object_repr="one v2")
    assert audit_row.object_id == str(ModelVersion.objects.get(model__name="one", version=2).pk)
    assert audit_row.ip == "127.0.0.1" or audit_row.ip is None


def test_what_create_returns_is_what_was_stored(operator):
    model = services.create_model(name="churn", actor=operator, tags={"team": "growth", "Tier": "1", "a": "x"})
    stored = services.get_model("churn")
    assert (model.pk, model.created_at, model.updated_at) == (stored.pk, stored.created_at, stored.updated_at)
    assert [(t.key, t.value) for t in model.tags.all()] == [(t.key, t.value) for t in stored.tags.order_by("key")]
    version = services.create_version(model="churn", actor=operator, source="s3://m/1", tags={"b": "2", "A": "1"})
    fresh = ModelVersion.objects.get(pk=version.pk)
    assert (version.version, version.created_at, version.model.name) == (1, fresh.created_at, "churn")
    assert [(t.pk, t.key) for t in version.tags.all()] == [(t.pk, t.key) for t in fresh.tags.order_by("key")]
    # The model was marked updated with the version.
    assert services.get_model("churn").updated_at == version.created_at == version.model.updated_at


def test_a_registration_inside_a_rolled_back_transaction_leaves_nothing(operator):
    services.create_model(name="churn", actor=operator)
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_version(model="churn", actor=operator, source="s3://m/1")
        services.create_model(name="fraud", actor=operator)
        raise RuntimeError("the caller changed its mind")
    assert not ModelVersion.objects.exists()
    assert not RegisteredModel.objects.filter(name="fraud").exists()
    assert not AuditEntry.objects.filter(model="modelversion").exists()
    assert services.create_version(model="churn", actor=operator, source="s3://m/1").version == 1


def test_refusals_write_nothing(operator):
    services.create_model(name="churn", actor=operator)
    before = AuditEntry.objects.count(), VersionEvent.objects.count()
    with pytest.raises(services.AlreadyExists):
        services.create_model(name="churn", actor=operator, tags={"team": "x"})
    with pytest.raises(services.NotFound):
        services.create_version(model="nope", actor=operator, source="s3://m/1")
    assert (AuditEntry.objects.count(), VersionEvent.objects.count()) == before
    assert not services.get_model("churn").tags.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
@pytest.mark.django_db(transaction=True)
def test_dropped_prepared_statements_are_prepared_again(operator):
    """As after a pooler's DISCARD ALL: a request (autocommit) prepares them again and goes through."""
    services.create_model(name="churn", actor=operator)
    services.create_version(model="churn", actor=operator, source="s3://m/1")
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    assert services.create_version(model="churn", actor=operator, source="s3://m/2").version == 2
    assert services.create_model(name="fraud", actor=operator).pk


@pytest.mark.django_db(transaction=True)
def test_concurrent_registrations_never_share_a_number(operator):
    services.create_model(name="churn", actor=operator)
    threads_count, per_thread = 6, 5
    start = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def register() -> None:
        try:
            start.wait()
            for _ in range(per_thread):
                services.create_version(model="churn", actor=operator, source="s3://m/x")
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=register) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = threads_count * per_thread
    numbers = sorted(ModelVersion.objects.filter(model__name="churn").values_list("version", flat=True))
    assert numbers == list(range(1, total + 1))
    messages = VersionEvent.objects.filter(kind=VersionEvent.Kind.VERSION_CREATED).values_list("message", flat=True)
    assert sorted(messages) == sorted(f"Version {n} of churn created from s3://m/x." for n in numbers)
    audited = AuditEntry.objects.filter(model="modelversion").values_list("object_repr", flat=True)
    assert sorted(audited) == sorted(f"churn v{n}" for n in numbers)


def test_an_audit_entry_built_unsaved_is_what_record_saves(operator):
    built = audit_entry(action="create", actor=operator, app_label="mlops", model="x", object_repr="y" * 300)
    assert built.pk is None and len(built.object_repr) == 200 and built.actor_name == operator.username
