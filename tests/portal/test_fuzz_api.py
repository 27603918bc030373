"""Every operation of the OpenAPI document, fuzzed by schemathesis against the live server: no 5xx, ever.

The schema is read from the running portal (`/api/schema/`), so an endpoint a later change adds is
fuzzed too. A few objects are seeded first and each operation is tried both with their identifiers
(so the request reaches the endpoint's own logic) and with generated ones. Requests go over a real
socket to pytest-django's live server with an admin's API token. `FUZZ_EXAMPLES` (default 6)
bounds the examples per operation and per identifier source; `FUZZ_SEED` changes the generated
data (the default is fixed, so a failure is reproducible). docs/operations.md ("Fuzzing the API").
"""

from __future__ import annotations

import os
import re

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from aiops import services as aiops_services
from mlops import services as mlops_services
from opsportal.accounts import services as account_services
from opsportal.accounts.roles import Role
from tests.aiops import factories as aiops_factories
from tests.llmops import factories as llmops_factories
from tests.portal.factories import UserFactory, make_token

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services]

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "6"))
SEED = int(os.environ.get("FUZZ_SEED", "20261202"))

# Writes to these would take the fuzzer's own credentials away; their identifiers are always the victim's.
PINNED = {
    ("DELETE", "/api/v1/accounts/tokens/{id}/"),
    ("PATCH", "/api/v1/accounts/users/{id}/"),
    ("PUT", "/api/v1/accounts/users/{id}/"),
    ("DELETE", "/api/v1/accounts/users/{id}/"),
}


def seed_objects(admin) -> dict[str, dict[str, object]]:
    """One object of each kind, and the path parameters that name it, by the collection they live in."""
    victim = UserFactory(username="victim", role=Role.VIEWER)
    victim_token, _raw = account_services.create_api_token(user=admin, name="spare", actor=admin)
    integration, token = aiops_factories.integration(actor=admin)
    incident = aiops_factories.incident(integration, token)
    channel = aiops_factories.email_channel(actor=admin)
    silence = aiops_factories.silence(actor=admin, service="batch")
    rule = aiops_services.save_rule(actor=admin, name="by service", group_by=["service"])
    model = mlops_services.create_model(name="fuzz-model", actor=admin, tags={"team": "fuzz"})
    version = mlops_services.create_version(model=model, source="s3://fuzz/1", actor=admin, tags={"k": "v"})
    mlops_services.set_alias(model=model, alias="champion", version=version, actor=admin)
    hook, _secret = mlops_services.create_webhook(name="fuzz", url="http://127.0.0.1:9/hook", actor=admin)
    provider = llmops_factories.provider(base_url="http://127.0.0.1:9/v1", actor=admin)
    llm = llmops_factories.model(provider=provider, actor=admin)
    prompt = llmops_factories.prompt(actor=admin)
    dataset = llmops_factories.dataset(actor=admin)
    run = llmops_factories.run(version=prompt.versions.first(), model=llm, dataset=dataset, actor=admin)
    check = aiops_services.create_check(actor=admin, name="fuzz", kind="tcp", config={"host": "127.0.0.1", "port": 9})
    version_keys = {"version": version.version, "alias": "champion", "key": "team"}
    return {
        "accounts/users": {"id": victim.pk},
        "accounts/tokens": {"id": victim_token.pk},
        "aiops/integrations": {"id": integration.pk},
        "aiops/alerts": {"id": incident.alerts.first().pk},
        "aiops/incidents": {"id": incident.pk},
        "aiops/channels": {"id": channel.pk},
        "aiops/silences": {"id": silence.pk},
        "aiops/rules": {"id": rule.pk},
        "aiops/checks": {"id": check.pk},
        "mlops/models": {"name": model.name, "model_name": model.name, **version_keys},
        "mlops/webhooks": {"id": hook.pk},
        "llmops/providers": {"id": provider.pk},
        "llmops/models": {"id": llm.pk},
        "llmops/prompts": {"prompt_name": prompt.name, "name": prompt.name, "version": 1, "label": "production"},
        "llmops/datasets": {"id": dataset.pk, "dataset_pk": dataset.pk},
        "llmops/runs": {"id": run.pk, "run_pk": run.pk},
    }


def known_parameters(path: str, seeds: dict[str, dict[str, object]]) -> dict[str, object]:
    """The seeded identifiers for the path parameters of `path`, by its collection (`/api/v1/<app>/<what>/`)."""
    match = re.match(r"/api/v1/([^/]+/[^/]+)/", path)
    known = seeds.get(match.group(1), {}) if match else {}
    names = re.findall(r"{([^}]+)}", path)
    return {name: known[name] for name in names if name in known}


def order(operation) -> tuple[int, str]:
    """Reads and writes first, deletions last, so the seeded objects live through most of the run."""
    return (operation.method.upper() == "DELETE", operation.label)


def test_no_operation_answers_a_server_error(live_server, admin_user, allow_loopback):
    token = make_token(admin_user, name="fuzzer")
    seeds = seed_objects(admin_user)
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json", headers=headers)
    operations = sorted((result.ok() for result in schema.get_all_operations()), key=order)
    assert len(operations) > 100
    session = requests.Session()
    session.headers.update(headers)
    failures: list[str] = []

    for operation in operations:
        known = known_parameters(operation.path, seeds)
        pinned = (operation.method.upper(), operation.path) in PINNED
        strategies = [operation.as_strategy(path_parameters=known)] if known else []
        if not pinned:
            strategies.append(operation.as_strategy())

        @seed(SEED)
        @settings(
            max_examples=EXAMPLES * len(strategies),
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=st.one_of(strategies))
        def fuzz(case) -> None:
            response = case.call(base_url=live_server.url, session=session, timeout=30)
            case.validate_response(response, checks=[not_a_server_error])

        try:
            fuzz()
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{operation.label}: {exc}")

    assert not failures, "\n\n".join(failures)
