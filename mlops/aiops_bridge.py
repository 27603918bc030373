"""MLOps's calls into AIOps (`aiops.services`), made only when the AIOps app is installed.

The portal runs with any set of its apps (tests/portal/test_app_registry.py): without AIOps a breach is still
recorded and shown on the Monitoring tab, it just opens no incident, and there is no timeline to write to.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps


def aiops_installed() -> bool:
    return apps.is_installed("aiops")


def raise_alert(**fields: Any) -> Any:
    """`aiops.services.raise_alert(**fields)`, or None without AIOps."""
    if not aiops_installed():
        return None
    from aiops.services import raise_alert as aiops_raise_alert

    return aiops_raise_alert(**fields)


def note_on_alert_incident(**fields: Any) -> Any:
    """`aiops.services.note_on_alert_incident(**fields)`, or None without AIOps."""
    if not aiops_installed():
        return None
    from aiops.services import note_on_alert_incident as aiops_note

    return aiops_note(**fields)


def raised_alert_links(*, source: str, dedup_keys: list[str]) -> dict:
    """`aiops.services.raised_alert_links(...)`: each key's alerts with their incidents ({} without AIOps)."""
    if not aiops_installed():
        return {}
    from aiops.services import raised_alert_links as aiops_links

    return aiops_links(source=source, dedup_keys=dedup_keys)


def process_pending_alerts() -> int:
    """Correlate pending alerts into incidents now (seed_demo), 0 without AIOps."""
    if not aiops_installed():
        return 0
    from aiops.services import process_pending_alerts as aiops_process

    return aiops_process()
