"""AIOps's facade: every write and multi-model operation of the app goes through here."""

from django.urls import reverse

from opsportal.portal.summary import AppSummary, activity_stats


def overview() -> AppSummary:
    """AIOps's card on the combined overview."""
    return AppSummary(
        label="aiops",
        title="AIOps",
        description=(
            "Alerts from Alertmanager, Grafana, PagerDuty-style and generic senders, deduplicated and "
            "correlated into incidents to acknowledge, assign and resolve."
        ),
        url=reverse("aiops:index"),
        stats=activity_stats("aiops"),
    )
