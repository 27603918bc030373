"""The forms of the runbook pages: the runbook (steps as JSON, with validation messages naming the step), a run
started from an incident, and the kill switch."""

from __future__ import annotations

import json
from typing import Any

from django import forms

from opsportal.portal.forms import StyledForm

from .models import Runbook
from .services.runbooks import RUN_MODES


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise forms.ValidationError(f"{what} is not valid JSON: {exc}") from None


class RunbookForm(StyledForm):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    enabled = forms.BooleanField(required=False, initial=True)
    steps = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "class": "font-monospace", "spellcheck": "false"}),
        help_text="A JSON list of steps: http, wait, approval and notify (see the ready-made steps below). Strings "
        "are sandboxed templates over incident, alerts, labels, steps (earlier steps' values) and secrets.",
    )
    trigger_mode = forms.ChoiceField(choices=Runbook.Mode.choices, initial="manual", label="Trigger")
    match = forms.CharField(
        required=False,
        widget=forms.TextInput(attrs={"class": "font-monospace", "placeholder": '{"service": "checkout"}'}),
        help_text="For automatic triggers: labels an alert of a new incident must carry (service and severity "
        "included); a value may be a list of allowed values.",
    )
    window_minutes = forms.IntegerField(
        min_value=1,
        initial=15,
        label="Verification window (minutes)",
        help_text="A run remediates when its incident resolves within this time.",
    )
    max_concurrent_runs = forms.IntegerField(min_value=1, initial=1, label="Concurrent runs at most")
    max_runs_per_hour = forms.IntegerField(min_value=1, initial=6, label="Runs per hour at most")
    secrets = forms.CharField(
        required=False,
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "class": "font-monospace",
                "autocomplete": "off",
                "placeholder": "K8S_TOKEN=eyJhbGciOi...",
            }
        ),
        help_text="One NAME=value a line sets a secret (stored encrypted, never shown again); NAME= removes it. "
        "Templates read {{ secrets.NAME }}.",
    )

    @classmethod
    def initial_for(cls, runbook: Runbook) -> dict[str, Any]:
        return {
            "name": runbook.name, "description": runbook.description, "enabled": runbook.enabled,
            "steps": json.dumps(runbook.steps, indent=2), "trigger_mode": runbook.trigger_mode,
            "match": json.dumps(runbook.match) if runbook.match else "", "window_minutes": runbook.window_minutes,
            "max_concurrent_runs": runbook.max_concurrent_runs, "max_runs_per_hour": runbook.max_runs_per_hour,
        }  # fmt: skip

    def clean_steps(self) -> Any:
        return _json(self.cleaned_data["steps"], "Steps")

    def clean_match(self) -> Any:
        text = self.cleaned_data["match"].strip()
        return _json(text, "Match") if text else {}

    def clean_secrets(self) -> dict[str, str]:
        secrets = {}
        for number, line in enumerate(self.cleaned_data["secrets"].splitlines(), start=1):
            if not line.strip():
                continue
            if "=" not in line:
                raise forms.ValidationError(f"line {number}: write NAME=value (or NAME= to remove it)")
            name, value = line.split("=", 1)
            secrets[name.strip()] = value.strip()
        return secrets

    def service_values(self) -> dict[str, Any]:
        values = dict(self.cleaned_data)
        if not values["secrets"]:
            values["secrets"] = None
        return values


class StartRunForm(StyledForm):
    runbook = forms.ModelChoiceField(queryset=Runbook.objects.filter(enabled=True), empty_label=None)
    mode = forms.ChoiceField(
        choices=[(m, {"run": "Run", "approval": "Run after approval", "dry-run": "Dry run"}[m]) for m in RUN_MODES]
    )


class KillSwitchForm(StyledForm):
    reason = forms.CharField(required=False, max_length=300)
