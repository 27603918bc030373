"""LLMOps's calls into AIOps (`aiops.services`), made only when the AIOps app is installed.

The portal runs with any set of its apps (tests/portal/test_app_registry.py): without AIOps an LLM monitor
still measures and shows its state, it just opens no incident.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps


def raise_alert(**fields: Any) -> Any:
    """`aiops.services.raise_alert(**fields)`, or None without AIOps."""
    if not apps.is_installed("aiops"):
        return None
    from aiops.services import raise_alert as aiops_raise_alert

    return aiops_raise_alert(**fields)
