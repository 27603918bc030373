"""Settings come from the environment and fail loudly on bad values."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in OURS}


def manage(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**CLEAN_ENV, "OPSPORTAL_VAR_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPSPORTAL_ENV": "staging"}, "OPSPORTAL_ENV='staging' must be 'development' or 'production'"),
        ({"OPSPORTAL_ENV": "production"}, "SECRET_KEY must be set"),
        ({"OPSPORTAL_ENV": "production", "SECRET_KEY": "k" * 60}, "ALLOWED_HOSTS must be set"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL scheme must be postgres:// or sqlite:///"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL='http://localhost' is not a Redis or AMQP URL"),
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"DB_CONN_MAX_AGE": "ten"}, "DB_CONN_MAX_AGE='ten' is not an integer"),
    ],
)
def test_bad_values_stop_start_up_with_a_clear_message(tmp_path, env, message):
    result = manage("check", tmp_path=tmp_path, **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_the_deploy_check(tmp_path):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        tmp_path=tmp_path,
        OPSPORTAL_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="ops.example.com",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_development_secret_key_is_generated_once_and_kept(tmp_path):
    manage("check", tmp_path=tmp_path)
    key = (tmp_path / "secret_key").read_text()
    manage("check", tmp_path=tmp_path)
    assert (tmp_path / "secret_key").read_text() == key
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"


def test_database_connections_are_persistent_and_health_checked(settings):
    db = settings.DATABASES["default"]
    assert db["CONN_HEALTH_CHECKS"] is True
    if db["ENGINE"].endswith("postgresql"):
        assert db["CONN_MAX_AGE"] > 0


def test_services_are_the_configured_ones(settings):
    """In CI (OPSPORTAL_REQUIRE_SERVICES=1) the suite must really run on PostgreSQL and Redis."""
    if os.environ.get("OPSPORTAL_REQUIRE_SERVICES") != "1":
        pytest.skip("only meaningful when services are required")
    import redis

    assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert settings.CELERY_BROKER_URL.startswith("redis://")
    assert redis.Redis.from_url(settings.REDIS_URL).ping()
