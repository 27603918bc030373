"""Shared MLOps fixtures: registered models with versions, made through the services like a user would."""

from __future__ import annotations

import pytest

from . import factories


@pytest.fixture
def make_model(operator):
    """`make_model(name, versions=2, actor=operator, **fields)`: see `factories.registered_model`."""

    def make(name: str = "churn", versions: int = 2, actor=None, **fields):
        return factories.registered_model(actor=actor or operator, name=name, versions=versions, **fields)

    return make


@pytest.fixture
def churn(make_model):
    return make_model()


@pytest.fixture
def guarded(operator, admin_user):
    """'fraud' with an approval policy; version 1 is in Production, version 2 is new."""
    return factories.guarded_model(actor=operator, admin=admin_user)


@pytest.fixture
def media(settings, tmp_path):
    """Uploaded artifacts go to a fresh directory."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def hooks_allowed(settings):
    """Webhooks may call hooks.example.com."""
    settings.OPSPORTAL_OUTBOUND_ALLOWLIST = ["hooks.example.com"]
