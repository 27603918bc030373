"""LLMOps's facade: every write and multi-model operation of the app goes through here."""

from django.urls import reverse

from opsportal.portal.summary import AppSummary, activity_stats


def overview() -> AppSummary:
    """LLMOps's card on the combined overview."""
    return AppSummary(
        label="llmops",
        title="LLMOps",
        description=(
            "Prompts with versions and labels, datasets, evaluation runs, traces, guardrails and human review."
        ),
        url=reverse("llmops:index"),
        stats=activity_stats("llmops"),
    )
