"""The real `mlflow.MlflowClient` against the portal served by gunicorn in its own process.

`MLFLOW_TRACKING_URI=http://HOST/mlflow` and `MLFLOW_TRACKING_TOKEN=<API token>` are all a data
scientist sets. The server reads the test database (committed data: transaction=True), on SQLite or
PostgreSQL, whichever the tests use. One server serves the whole module.
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

from mlops import services
from mlops.models import ApprovalRequest, ModelVersion, Stage
from opsportal.accounts.roles import Role
from tests.helpers import wait_for
from tests.portal.factories import UserFactory

mlflow = pytest.importorskip("mlflow")
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # get_latest_versions and stage transitions are deprecated in MLflow, not removed; the portal serves them.
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

ROOT = Path(__file__).resolve().parents[2]


def database_url() -> str:
    """The test database as a DATABASE_URL, for the server process."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker, tmp_path_factory) -> str:
    """gunicorn serving the portal on the test database; yields its base URL."""
    with django_db_blocker.unblock():
        url = database_url()
    var_dir = tmp_path_factory.mktemp("mlflow-server-var")
    log_path = var_dir / "gunicorn.log"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "OPSPORTAL_VAR_DIR": str(var_dir),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "opsportal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1",
             "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )  # fmt: skip

    def up_or_gone() -> bool:
        if process.poll() is not None:
            return True  # it exited: waiting longer would not help
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        except OSError:
            return False

    try:
        if not wait_for(up_or_gone, timeout=60, interval=0.2) or process.poll() is not None:
            raise RuntimeError(f"gunicorn did not start:\n{log_path.read_text()[-3000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def api_token(user) -> str:
    out = io.StringIO()
    call_command("create_api_token", user.username, "--name", "mlflow client", stdout=out, stderr=io.StringIO())
    return out.getvalue().strip().splitlines()[-1]


@pytest.fixture
def as_user(server, monkeypatch):
    """Points the MLflow client at the server with `user`'s token (None: no token); returns a new client."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.setenv("DO_NOT_TRACK", "true")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{server}/mlflow")

    def use(user) -> MlflowClient:
        if user is None:
            monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        else:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", api_token(user))
        return MlflowClient()

    return use


@pytest.fixture
def operator_client(as_user):
    return as_user(UserFactory(username="olga", role=Role.OPERATOR))


def error_code(call, *args, **kwargs) -> tuple[str, str]:
    with pytest.raises(MlflowException) as caught:
        call(*args, **kwargs)
    return caught.value.error_code, caught.value.message


def test_the_registry_workflow_with_the_real_client(operator_client):
    client = operator_client
    model = client.create_registered_model("churn", tags={"team": "growth"}, description="Predicts churn.")
    assert model.name == "churn" and model.tags == {"team": "growth"} and model.description == "Predicts churn."
    assert model.creation_timestamp > 1_600_000_000_000

    v1 = client.create_model_version("churn", "s3://models/churn/1", run_id="run1", tags={"framework": "xgboost"})
    v2 = client.create_model_version("churn", "runs:/run2/model", run_id="run2", description="second")
    v3 = client.create_model_version("churn", "models:/churn/2", run_link="http://mlflow.example/runs/run3")
    assert [v1.version, v2.version, v3.version] == ["1", "2", "3"]
    assert v1.status == "READY" and v1.current_stage == "None" and v1.tags == {"framework": "xgboost"}
    assert v3.run_link == "http://mlflow.example/runs/run3"

    got = client.get_model_version("churn", "2")
    assert got.source == "runs:/run2/model" and got.run_id == "run2" and got.description == "second"
    assert client.get_model_version_download_uri("churn", "1") == "s3://models/churn/1"

    client.update_registered_model("churn", description="Churn, v2 docs.")
    client.update_model_version("churn", "1", description="baseline")
    assert client.get_registered_model("churn").description == "Churn, v2 docs."
    assert client.get_model_version("churn", "1").description == "baseline"

    client.set_registered_model_tag("churn", "owner", "ds-team")
    client.delete_registered_model_tag("churn", "team")
    assert client.get_registered_model("churn").tags == {"owner": "ds-team"}
    client.set_model_version_tag("churn", "2", "validated", "yes")
    client.delete_model_version_tag("churn", "1", "framework")
    assert client.get_model_version("churn", "2").tags == {"validated": "yes"}
    assert client.get_model_version("churn", "1").tags == {}

    client.set_registered_model_alias("churn", "champion", "2")
    by_alias = client.get_model_version_by_alias("churn", "champion")
    assert by_alias.version == "2" and by_alias.aliases == ["champion"]
    assert client.get_registered_model("churn").aliases == {"champion": "2"}
    client.delete_registered_model_alias("churn", "champion")
    assert error_code(client.get_model_version_by_alias, "churn", "champion")[0] == "RESOURCE_DOES_NOT_EXIST"

    client.transition_model_version_stage("churn", "1", "Production")
    promoted = client.transition_model_version_stage("churn", "2", "Production", archive_existing_versions=True)
    assert promoted.current_stage == "Production"
    assert client.get_model_version("churn", "1").current_stage == "Archived"
    client.transition_model_version_stage("churn", "3", "staging")
    latest = client.get_latest_versions("churn")
    assert {(v.version, v.current_stage) for v in latest} == {("1", "Archived"), ("2", "Production"), ("3", "Staging")}
    assert [v.version for v in client.get_latest_versions("churn", stages=["Production"])] == ["2"]
    assert {v.version for v in client.get_registered_model("churn").latest_versions} == {"1", "2", "3"}

    client.rename_registered_model("churn", "churn-xgb")
    assert client.get_registered_model("churn-xgb").name == "churn-xgb"
    assert error_code(client.get_registered_model, "churn")[0] == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_model_version("churn-xgb", "2").current_stage == "Production"

    client.delete_model_version("churn-xgb", "3")
    assert error_code(client.get_model_version, "churn-xgb", "3")[0] == "RESOURCE_DOES_NOT_EXIST"
    client.delete_registered_model("churn-xgb")
    assert error_code(client.get_registered_model, "churn-xgb")[0] == "RESOURCE_DOES_NOT_EXIST"
    assert not ModelVersion.objects.filter(model__name="churn-xgb").exists()


def test_search_with_filters_and_pages(operator_client):
    client = operator_client
    for i in range(7):
        client.create_registered_model(f"churn-{i}", tags={"team": "growth" if i % 2 else "risk"})
        client.create_model_version(f"churn-{i}", f"s3://models/churn-{i}/1", run_id=f"run{i}")
        client.create_model_version(f"churn-{i}", f"s3://models/churn-{i}/2", run_id=f"run{i}b")
    client.create_registered_model("fraud")

    # The client appends its own prompt clause (tag.`mlflow.prompt.is_prompt` != 'true') to every filter.
    names = [m.name for m in client.search_registered_models(filter_string="tags.team = 'growth'")]
    assert sorted(names) == ["churn-1", "churn-3", "churn-5"]
    assert len(client.search_registered_models()) == 8
    assert [m.name for m in client.search_registered_models("name LIKE 'fr%'")] == ["fraud"]

    seen, token, pages = [], None, 0
    while True:
        page = client.search_registered_models(
            filter_string="name ILIKE 'CHURN-%'", max_results=3, order_by=["name DESC"], page_token=token
        )
        seen += [m.name for m in page]
        pages += 1
        token = page.token
        if not token:
            break
    assert pages == 3
    assert seen == [f"churn-{i}" for i in range(6, -1, -1)]
    assert all(len(m.latest_versions) == 1 for m in client.search_registered_models("name = 'churn-2'"))

    versions = client.search_model_versions("name = 'churn-4'", order_by=["version_number ASC"])
    assert [(v.name, v.version, v.run_id) for v in versions] == [("churn-4", "1", "run4"), ("churn-4", "2", "run4b")]
    found = client.search_model_versions("run_id IN ('run1', 'run2b')")
    assert sorted((v.name, v.version) for v in found) == [("churn-1", "1"), ("churn-2", "2")]

    seen, token = [], None
    while True:
        page = client.search_model_versions("name LIKE 'churn-%'", max_results=4, page_token=token)
        seen += [(v.name, v.version) for v in page]
        token = page.token
        if not token:
            break
    assert len(seen) == len(set(seen)) == 14

    code, message = error_code(client.search_registered_models, "name = 'x' OR name = 'y'")
    assert code == "INVALID_PARAMETER_VALUE" and "OR" in message


def test_errors_reach_the_client_as_mlflow_error_codes(operator_client, as_user):
    client = operator_client
    client.create_registered_model("churn")
    assert error_code(client.create_registered_model, "churn")[0] == "RESOURCE_ALREADY_EXISTS"
    assert error_code(client.get_registered_model, "nope")[0] == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(client.create_model_version, "nope", "s3://x")[0] == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(client.get_model_version, "churn", "4")[0] == "RESOURCE_DOES_NOT_EXIST"
    client.create_model_version("churn", "s3://models/churn/1")
    code, message = error_code(client.transition_model_version_stage, "churn", "1", "Live")
    assert code == "INVALID_PARAMETER_VALUE" and "Live" in message

    viewer = as_user(UserFactory(username="vik", role=Role.VIEWER))
    assert viewer.get_registered_model("churn").name == "churn"
    assert error_code(viewer.create_registered_model, "other")[0] == "PERMISSION_DENIED"

    anonymous = as_user(None)
    code, message = error_code(anonymous.search_registered_models)
    assert code == "UNAUTHENTICATED" and "Bearer" in message


def test_a_promotion_under_approval_policy_names_the_request(as_user):
    operator = UserFactory(username="oscar", role=Role.OPERATOR)
    admin = UserFactory(username="adele", role=Role.ADMIN)
    client = as_user(operator)
    client.create_registered_model("credit")
    client.create_model_version("credit", "s3://models/credit/1")
    services.update_model(model=services.get_model("credit"), actor=admin, approval_required=True)

    code, message = error_code(client.transition_model_version_stage, "credit", "1", "Production", True)
    request = ApprovalRequest.objects.get(version__model__name="credit", status=ApprovalRequest.Status.PENDING)
    assert code == "PERMISSION_DENIED"
    assert f"approval request #{request.pk}" in message
    assert client.get_model_version("credit", "1").current_stage == "None"

    services.approve(request=request, actor=admin)
    assert client.get_model_version("credit", "1").current_stage == "Production"
    assert ModelVersion.objects.get(model__name="credit").stage == Stage.PRODUCTION
