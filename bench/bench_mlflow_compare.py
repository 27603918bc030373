"""OpsPortal's MLflow-compatible registry beside `mlflow server` itself, in the same run.

Both serve the same registry (1,000 models x 10 versions, tags on every model and version, one
alias per model; `BENCH_MLFLOW_MODELS` to change), bulk-loaded the same way into each one's own
tables, on the same PostgreSQL (MLflow in its own database), one worker each: OpsPortal under
gunicorn, MLflow 3.17 under its own server (`mlflow server --workers 1`, uvicorn) from the
benchmark-only environment var/bench-venv (bench/mlflow-server/requirements.txt; built here when
missing). The same client (bench/server.py's keep-alive `Http`) sends the same MLflow REST
requests, sequentially, to both; registration (create a model, then its versions) runs with 4
client threads, against 1 and then 4 workers each (the median of 3 timed rounds,
`BENCH_MLFLOW_REGISTER_ROUNDS`). Both servers are up together and each read case and each
registration round runs on one and then the other, so the machine's changing speed (it is shared)
falls on both alike.

If the environment cannot be built (no PyPI, say), this benchmark reports that and is skipped;
the others still run. Ratios are MLflow's time divided by OpsPortal's (higher is better for us).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection

from mlops.models import RegisteredModel
from opsportal.accounts import services as accounts
from opsportal.accounts.roles import Role

from . import server
from .bench_mlops import load_registry

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "bench-venv"
REQUIREMENTS = ROOT / "bench" / "mlflow-server" / "requirements.txt"
MODELS = int(os.environ.get("BENCH_MLFLOW_MODELS", "1000"))
VERSIONS = 10
TEAMS = 10
PREFIX = "cmp-model"
REPEAT = int(os.environ.get("BENCH_MLFLOW_REPEAT", "100"))
REGISTER_MODELS = int(os.environ.get("BENCH_MLFLOW_REGISTER_MODELS", "40"))
REGISTER_VERSIONS = 4
REGISTER_ROUNDS = int(os.environ.get("BENCH_MLFLOW_REGISTER_ROUNDS", "3"))
CLIENT_THREADS = 4
MLFLOW_DB = "bench_mlflow"
API = "/api/2.0/mlflow/"
# What MlflowClient.search_registered_models sends for filter_string="tags.team = '...'".
# Team values of their own, so the search sees only these models even after bench_mlops loaded its registry.
TEAM = "cmp-team"
TAG_FILTER = f"tags.team = '{TEAM}-3' AND tag.`mlflow.prompt.is_prompt` != 'true'"


def mlflow_executable() -> tuple[Path | None, str]:
    """var/bench-venv/bin/mlflow, building the environment if needed; (None, why) when it cannot be built."""
    mlflow = VENV / "bin" / "mlflow"
    if mlflow.exists():
        return mlflow, ""
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120)  # noqa: S603
        subprocess.run(  # noqa: S603 (pip of our own benchmark environment)
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        output = getattr(exc, "stderr", b"") or b""
        return None, f"could not build {VENV} from {REQUIREMENTS}: {exc} {output.decode(errors='replace')[-300:]}"
    return (mlflow, "") if mlflow.exists() else (None, f"{mlflow} missing after install")


def admin_dsn(database: str) -> str:
    db = settings.DATABASES["default"]
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgresql://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database}"


def recreate_database(name: str) -> None:
    with psycopg.connect(admin_dsn(settings.DATABASES["default"]["NAME"]), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    with psycopg.connect(admin_dsn(settings.DATABASES["default"]["NAME"]), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MlflowServer:
    """`mlflow server` on its own database of the same PostgreSQL."""

    def __init__(self, mlflow: Path, workers: int) -> None:
        self.port = server.free_port()
        self.artifacts = tempfile.mkdtemp(prefix="bench-mlflow-artifacts-")
        db = settings.DATABASES["default"]
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        uri = (
            f"postgresql+psycopg2://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{MLFLOW_DB}"
        )
        log = open(os.environ.get("BENCH_MLFLOW_LOG", os.devnull), "ab")  # noqa: SIM115 (closed in stop)
        self.log = log
        self.process = subprocess.Popen(  # noqa: S603 (the benchmark environment's mlflow)
            [str(mlflow), "server", "--backend-store-uri", uri, "--default-artifact-root", self.artifacts,
             "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(workers)],
            cwd=tempfile.gettempdir(), stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        server.wait_until_up(self.port, "/health", self.process, "mlflow server (set BENCH_MLFLOW_LOG=path)", 180)

    def stop(self) -> None:
        # uvicorn's workers are the server's children: stop the whole process group we started.
        try:
            os.killpg(self.process.pid, 15)
            self.process.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, 9)
        self.log.close()


def load_mlflow(models: int) -> None:
    """The same registry as bench_mlops.load_registry, in MLflow's own tables (COPY)."""
    now = int(time.time() * 1000)
    stages = ["Archived"] * 6 + ["Production", "Staging", "None", "None"]
    with psycopg.connect(admin_dsn(MLFLOW_DB)) as conn, conn.cursor() as cur:
        with cur.copy("COPY registered_models (name, creation_time, last_updated_time, description) FROM STDIN") as c:
            for i in range(models):
                day = 86_400_000
                c.write_row([f"{PREFIX}-{i:04}", now - (models - i) * day, now - i * 60_000, f"Bench model {i}."])
        with cur.copy("COPY registered_model_tags (key, value, name) FROM STDIN") as c:
            for i in range(models):
                c.write_row(["team", f"{TEAM}-{i % TEAMS}", f"{PREFIX}-{i:04}"])
                c.write_row(["tier", str(i % 3), f"{PREFIX}-{i:04}"])
        with cur.copy(
            "COPY model_versions (name, version, creation_time, last_updated_time, description, user_id, current_stage,"
            " source, run_id, status, status_message, run_link, storage_location) FROM STDIN"
        ) as c:
            for i in range(models):
                name = f"{PREFIX}-{i:04}"
                for n in range(VERSIONS):
                    at = now - (VERSIONS - n) * 3_600_000
                    source = f"s3://models/{name}/{n + 1}"
                    c.write_row([name, n + 1, at, at, "", "bench", stages[n], source, f"run-{i}-{n + 1}"[:32], "READY",
                                 "", "", source])  # fmt: skip
        with cur.copy("COPY model_version_tags (key, value, name, version) FROM STDIN") as c:
            for i in range(models):
                for n in range(VERSIONS):
                    c.write_row(["framework", "xgboost", f"{PREFIX}-{i:04}", n + 1])
                    if n % 2 == 0:
                        c.write_row(["validated", "yes", f"{PREFIX}-{i:04}", n + 1])
        with cur.copy("COPY registered_model_aliases (alias, version, name) FROM STDIN") as c:
            for i in range(models):
                c.write_row(["champion", 7, f"{PREFIX}-{i:04}"])
        for table in ("registered_models", "registered_model_tags", "model_versions", "model_version_tags",
                      "registered_model_aliases"):  # fmt: skip
            cur.execute(f"ANALYZE {table}")


def read_cases(models: int) -> list[tuple[str, str, dict, int | None]]:
    """(name, path, params, expected result count) of the read requests timed on both servers."""
    name = f"{PREFIX}-{min(420, models - 1):04}"
    return [
        ("registered_models_get", "registered-models/get", {"name": name}, None),
        ("get_by_alias", "registered-models/alias", {"name": name, "alias": "champion"}, None),
        ("versions_search_by_name", "model-versions/search", {"filter": f"name = '{name}'"}, VERSIONS),
        ("models_search_by_tag", "registered-models/search", {"filter": TAG_FILTER, "max_results": 100},
         min(100, models // TEAMS)),
        ("models_search_name_like", "registered-models/search",
         {"filter": f"name LIKE '{PREFIX}-04%' AND tag.`mlflow.prompt.is_prompt` != 'true'", "max_results": 100},
         min(100, max(0, models - 400))),
    ]  # fmt: skip


def check_answer(body: bytes, expected: int | None, what: str) -> None:
    if expected is None:
        return
    data = json.loads(body)
    found = len(data.get("registered_models", data.get("model_versions", [])))
    if found != expected:
        raise RuntimeError(f"{what}: {found} results, expected {expected}")


@dataclass
class Target:
    """One of the two servers under test, as the client sees it."""

    port: int
    base: str
    token: str | None


def time_reads(theirs: Target, ours: Target, models: int) -> tuple[dict[str, dict], dict[str, dict]]:
    """Each read case timed on MLflow's server and then on ours, case by case (both servers are up, the
    idle one costs nothing), so a slower stretch of this shared machine falls on both alike."""
    results: tuple[dict[str, dict], dict[str, dict]] = ({}, {})
    clients = [server.Http(target.port, target.token) for target in (theirs, ours)]
    try:
        for name, path, params, expected in read_cases(models):
            for client, target, into in zip(clients, (theirs, ours), results, strict=True):
                status, body = client.get(target.base + API + path, params)
                if status != 200:
                    raise RuntimeError(f"{name} answered {status}: {body[:300]!r}")
                check_answer(body, expected, name)
                into[name] = server.timed(lambda c=client, p=target.base + API + path, q=params: c.get(p, q), REPEAT)
    finally:
        for client in clients:
            client.close()
    return results


def register(theirs: Target, ours: Target, tag: str) -> tuple[dict, dict]:
    """CLIENT_THREADS clients each creating models and their versions; requests/s over all of them, for
    MLflow's server and ours.

    An untimed round on each first, so that every worker has served registrations (imports, caches,
    connections), then REGISTER_ROUNDS timed rounds, alternately on each server: the round with the
    median requests/s is reported, with every round's figure (a round is about a second, and this
    shared machine's speed varies from second to second).
    """
    results = []
    for label, target in (("mlflow", theirs), ("ours", ours)):
        register_models(target, f"{tag}-{label}-warm", max(CLIENT_THREADS, REGISTER_MODELS // 4))
    rounds: tuple[list[dict], list[dict]] = ([], [])
    for n in range(REGISTER_ROUNDS):
        for label, target, into in (("mlflow", theirs, rounds[0]), ("ours", ours, rounds[1])):
            into.append(register_models(target, f"{tag}-{label}-{n}", REGISTER_MODELS))
    for figures in rounds:
        figures.sort(key=lambda r: r["requests_per_second"])
        median = figures[len(figures) // 2]
        results.append({**median, "rounds_requests_per_second": [r["requests_per_second"] for r in figures]})
    return results[0], results[1]


def register_models(target: Target, tag: str, count: int) -> dict:
    names = [f"reg-{tag}-{i:04}" for i in range(count)]
    errors: list[str] = []
    latencies: list[float] = []
    lock = threading.Lock()

    def client() -> None:
        http = server.Http(target.port, target.token)
        try:
            while True:
                with lock:
                    if not names:
                        return
                    name = names.pop()
                calls = [("registered-models/create", {"name": name, "tags": [{"key": "team", "value": "reg"}]})] + [
                    ("model-versions/create", {"name": name, "source": f"s3://reg/{name}/{n}", "run_id": f"r{n}"})
                    for n in range(REGISTER_VERSIONS)
                ]
                for path, body in calls:
                    start = time.perf_counter()
                    status, answer = http.post(target.base + API + path, body)
                    elapsed = (time.perf_counter() - start) * 1000
                    if status != 200:
                        raise RuntimeError(f"{path} answered {status}: {answer[:300]!r}")
                    with lock:
                        latencies.append(elapsed)
        except Exception as exc:
            errors.append(str(exc))
        finally:
            http.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"registration failed: {errors[0]}")
    return {**server.summary(latencies), "requests_per_second": len(latencies) / seconds}


def _figures(result: dict) -> str:
    return "/".join(f"{r:.0f}" for r in result["rounds_requests_per_second"])


def row(name: str, ours: dict, theirs: dict, fixed: dict, notes: str) -> dict:
    p50 = theirs["p50_ms"] / ours["p50_ms"]
    p95 = theirs["p95_ms"] / ours["p95_ms"]
    return {
        **ours,
        "queries": 0,
        "mlflow_p50_ms": theirs["p50_ms"],
        "mlflow_p95_ms": theirs["p95_ms"],
        "ratio_p50": p50,
        "ratio_p95": p95,
        "fixed_cost": fixed,
        "notes": f"{notes}: mlflow server p50 {theirs['p50_ms']:.1f} ms (p95 {theirs['p95_ms']:.1f}) vs ours "
        f"{ours['p50_ms']:.1f} ({ours['p95_ms']:.1f}) = {p50:.1f}x at p50, {p95:.1f}x at p95",
    }


def skipped(why: str) -> Iterator[tuple[str, dict]]:
    print(f"mlflow comparison skipped: {why}", file=sys.stderr)
    yield "mlflow_compare", {"p50_ms": 0.0, "p95_ms": 0.0, "per_second": 0.0, "queries": 0, "skipped": True,
                             "notes": f"SKIPPED: {why}"}  # fmt: skip


def run() -> Iterator[tuple[str, dict]]:
    if connection.vendor != "postgresql":
        yield from skipped("needs PostgreSQL (set DATABASE_URL)")
        return
    mlflow, why = mlflow_executable()
    if mlflow is None:
        yield from skipped(why)
        return
    admin = accounts.create_user(username="bench-compare", role=Role.ADMIN, actor=None, password="bench-password-123")
    _token, raw = accounts.create_api_token(user=admin, name="bench", actor=None)
    if not RegisteredModel.objects.filter(name__startswith=PREFIX).exists():
        load_registry(admin, models=MODELS, prefix=PREFIX, team=TEAM)
    recreate_database(MLFLOW_DB)
    size = f"{MODELS:,} models x {VERSIONS} versions"
    try:
        # MLflow creates its schema when it starts; the registry is loaded once it is there.
        theirs_server = MlflowServer(mlflow, workers=1)
        try:
            load_mlflow(MODELS)
            with server.running(workers=1) as port:
                theirs_target, ours_target = Target(theirs_server.port, "", None), Target(port, "/mlflow", raw)
                fixed = server.fixed_cost(port, raw)
                theirs, ours = time_reads(theirs_target, ours_target, MODELS)
                theirs_register, ours_register = register(theirs_target, ours_target, "w1")
        finally:
            theirs_server.stop()
        for name, _path, params, _expected in read_cases(MODELS):
            what = f"{name.replace('_', ' ')} {json.dumps(params)}, {size}, 1 worker each"
            yield f"mlflow_vs_{name}", row(name, ours[name], theirs[name], fixed, what)
        theirs_server = MlflowServer(mlflow, workers=4)
        try:
            with server.running(workers=4) as port:
                theirs_register4, ours_register4 = register(
                    Target(theirs_server.port, "", None), Target(port, "/mlflow", raw), "w4"
                )
        finally:
            theirs_server.stop()
    finally:
        drop_database(MLFLOW_DB)
    for workers, mine, other in ((1, ours_register, theirs_register), (4, ours_register4, theirs_register4)):
        ratio = mine["requests_per_second"] / other["requests_per_second"]
        yield (
            f"mlflow_vs_registration_{workers}w",
            {
                **mine,
                "per_second": mine["requests_per_second"],
                "queries": 0,
                "mlflow_requests_per_second": other["requests_per_second"],
                "mlflow_p50_ms": other["p50_ms"],
                "ratio_requests_per_second": ratio,
                "mlflow_rounds_requests_per_second": other["rounds_requests_per_second"],
                "notes": f"{REGISTER_MODELS} models x (create + {REGISTER_VERSIONS} versions), {CLIENT_THREADS} "
                f"client threads, {workers} worker(s) each, median of {REGISTER_ROUNDS} rounds: mlflow "
                f"{other['requests_per_second']:.1f} req/s vs ours {mine['requests_per_second']:.1f} = {ratio:.2f}x "
                f"(rounds: mlflow {_figures(other)}, ours {_figures(mine)})",
            },
        )
