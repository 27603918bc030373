"""The app registry: the core knows no app, so a portal without one (or without all three) still works."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from opsportal.registry import portal_apps

ROOT = Path(__file__).resolve().parents[2]


def test_the_product_apps_register_in_navigation_order():
    assert [app.label for app in portal_apps()] == ["aiops", "mlops", "llmops"]
    assert [app.nav_label for app in portal_apps()] == ["AIOps", "MLOps", "LLMOps"]


@pytest.mark.django_db
def test_the_overview_shows_a_card_per_registered_app_and_the_nav_links_them(admin_user):
    client = Client()
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    nav = page[page.index('id="mainnav"') : page.index("</nav>")]
    assert [label for label in re.findall(r'href="/(\w+)/">', nav) if label.endswith("ops")] == [
        "aiops",
        "mlops",
        "llmops",
    ]
    cards = re.findall(r'id="card-(\w+)"', page)
    assert cards == ["aiops", "mlops", "llmops"]


@pytest.mark.django_db
def test_seed_demo_seeds_every_registered_app(capsys):
    from django.core.management import call_command

    call_command("seed_demo")
    out = capsys.readouterr().out
    assert "AIOps demo data created" in out
    assert "MLOps demo registry created" in out
    assert "LLMOps demo data created" in out
    call_command("seed_demo")
    assert "AIOps demo data already there" in capsys.readouterr().out


def portal_without(dropped: str, tmp_path: Path) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.portal.settings_without_apps",
        "OPSPORTAL_TEST_DROP_APPS": dropped,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}",
        "OPSPORTAL_VAR_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "tests/portal/portal_without_apps.py")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("dropped", "kept"),
    [
        pytest.param("aiops,mlops,llmops", [], id="core-only"),
        pytest.param("llmops", ["aiops", "mlops"], id="without-llmops"),
        pytest.param("mlops", ["aiops", "llmops"], id="without-mlops"),
        pytest.param("aiops", ["mlops", "llmops"], id="without-aiops"),
    ],
)
def test_a_portal_without_an_app_serves_every_other_page(dropped, kept, tmp_path):
    result = portal_without(dropped, tmp_path)
    gone = dropped.split(",")
    assert result["apps"] == kept
    for path in ["/", "/api/v1/", "/api/schema/", "/audit/", "/system/"]:
        assert result["statuses"][path] == 200, (path, result["statuses"])
    for label in kept:
        assert result["statuses"][f"/{label}/"] == 200
    for label in gone:
        assert result["statuses"][f"/{label}/"] == 404, f"/{label}/ should be gone without the app"
    assert [label for label in result["nav"] if label in {"aiops", "mlops", "llmops"}] == kept
    assert set(gone).isdisjoint(result["api_root"])
    assert set(kept) <= set(result["api_root"])
    assert not [name for name in result["schedule"] if name.split(".")[0] in gone]
