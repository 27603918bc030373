"""MLOps's facade: every write and multi-model operation of the app goes through here."""

from django.urls import reverse

from opsportal.portal.summary import AppSummary, activity_stats


def overview() -> AppSummary:
    """MLOps's card on the combined overview."""
    return AppSummary(
        label="mlops",
        title="MLOps",
        description=(
            "The model registry (versions, stages, aliases, lineage, approvals) and drift and performance monitoring."
        ),
        url=reverse("mlops:index"),
        stats=activity_stats("mlops"),
    )
