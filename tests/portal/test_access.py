"""Every page and endpoint needs a login or a token, except login, health and static files."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

# What an anonymous GET and POST get from each public path: the login forms show (a POST without
# credentials shows the form again), the probes answer GET only.
PUBLIC = {
    "/accounts/login/": (200, 200),
    "/healthz": (200, 405),
    "/readyz": (200, 405),
    "/admin/login/": (200, 200),
    # Heartbeat pings (no check has this UUID: 404), GET or POST.
    "/ping/00000000-0000-0000-0000-000000000001": (404, 404),
    "/ping/00000000-0000-0000-0000-000000000001/start": (404, 404),
    "/ping/00000000-0000-0000-0000-000000000001/fail": (404, 404),
    "/ping/00000000-0000-0000-0000-000000000001/1": (404, 404),
    # Published status pages (none is called "x": 404), read-only.
    "/status/x/": (404, 405),
    "/status/x/status.json": (404, 405),
}
SAMPLE_ARGS = {"int": "1", "str": "x", "path": "x", "slug": "x", "uuid": "00000000-0000-0000-0000-000000000001"}


def _walk(patterns, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def concrete_path(pattern: str) -> str | None:
    """Turn a route or regex pattern into a requestable path with sample arguments."""
    path = re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLE_ARGS.get(m.group(1) or "str", "x"), pattern)
    path = path.replace("^", "").replace("$", "").replace("\\Z", "").replace("\\.", ".")
    path = re.sub(r"\(\?P<format>[^)]*\)", ".json", path)
    path = re.sub(r"\(\?P<\w+>[^)]*\)", "1", path)
    path = re.sub(r"\(\?:[^)]*\)\??", "", path)
    path = path.replace("?", "")
    if re.search(r"[\[\]()*+\\]", path):
        return None
    return "/" + path


def all_paths() -> list[str]:
    paths = {concrete_path(p) for p in _walk(get_resolver().url_patterns)}
    return sorted(p for p in paths if p)


def test_the_walk_covers_the_portal():
    paths = all_paths()
    for expected in [
        "/",
        "/aiops/",
        "/mlops/",
        "/llmops/",
        "/audit/",
        "/system/",
        "/api/v1/",
        "/api/schema/",
        "/metrics",
    ]:
        assert expected in paths
    assert len(paths) > 40


@pytest.mark.django_db
@pytest.mark.parametrize("path", all_paths())
def test_anonymous_requests_are_refused(client, path):
    for index, method in enumerate(("get", "post")):
        response = getattr(client, method)(path)
        if path in PUBLIC:
            assert response.status_code == PUBLIC[path][index], f"{method} {path} answered {response.status_code}"
            continue
        if path.startswith(("/api/", "/metrics", "/mlflow/", "/loki/")):  # token-authenticated APIs
            assert response.status_code == 401, f"{method} {path} answered {response.status_code}"
        else:
            assert response.status_code in (301, 302), f"{method} {path} answered {response.status_code}"
            location = response["Location"]
            assert "/login/" in location, f"{method} {path} redirected to {location}"


@pytest.mark.django_db
def test_public_endpoints_answer_without_login(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    login = client.get("/accounts/login/")
    assert login.status_code == 200
    assert b"Log in to OpsPortal" in login.content


@pytest.mark.django_db
def test_static_files_are_served_without_login(live_server):
    import urllib.request

    with urllib.request.urlopen(f"{live_server.url}/static/css/portal.css") as response:
        assert response.status == 200
        assert b"bg-portal" in response.read()


@pytest.mark.django_db
def test_a_role_less_user_sees_nothing(client, django_user_model):
    user = django_user_model.objects.create_user("norole", password="x-very-long-password")
    client.force_login(user)
    assert client.get("/").status_code == 403
    assert client.get("/audit/").status_code == 403
    # but may still manage their own profile
    assert client.get("/accounts/profile/").status_code == 200
