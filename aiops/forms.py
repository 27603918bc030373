from __future__ import annotations

import json
import re

from django import forms
from django.contrib.auth.models import User

from opsportal.portal.forms import StyledForm

from .models import SEVERITY_CHOICES, Integration, NotificationChannel

MATCHER_HELP = (
    "One matcher per line: label=value, label!=value, label=~regex or label!~regex "
    "(e.g. service=checkout, env=~prod|staging)."
)


# label, operator, value: the label can't contain an operator character, the value can ("summary=a!=b").
MATCHER_LINE = re.compile(r"^\s*([^=!~\s]+)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


def parse_matcher_lines(text: str, field: str = "matchers") -> list[dict]:
    """'service=checkout\\nenv=~prod.*' -> [{"label": "service", "op": "=", "value": "checkout"}, ...]

    Values may be quoted as in Alertmanager (service="checkout"); regular expressions are
    checked here, so an error names the line it is on.
    """
    matchers = []
    errors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"Line {number} (“{line.strip()[:60]}”)"
        match = MATCHER_LINE.match(line)
        if not match:
            errors.append(f"{where}: expected label=value, label!=value, label=~regex or label!~regex.")
            continue
        label, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                errors.append(f"{where}: not a valid regular expression ({exc}).")
                continue
        matchers.append({"label": label, "op": op, "value": value})
    if errors:
        raise forms.ValidationError(errors)
    return matchers


def matcher_lines(matchers: list[dict]) -> str:
    return "\n".join(f"{m['label']}{m.get('op', '=')}{m['value']}" for m in matchers)


class IntegrationForm(StyledForm):
    name = forms.CharField(max_length=100, help_text="e.g. 'prod Alertmanager'.")
    kind = forms.ChoiceField(choices=Integration.Kind.choices)
    rate_limit_per_minute = forms.IntegerField(min_value=1, initial=6000, label="Rate limit (deliveries/minute)")


class SilenceForm(StyledForm):
    matchers = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text=MATCHER_HELP)
    duration_hours = forms.FloatField(min_value=0.05, max_value=24 * 90, initial=2, label="Duration (hours)")
    comment = forms.CharField(max_length=500, help_text="Why, e.g. 'db-3 maintenance'.")

    def clean_matchers(self) -> list[dict]:
        matchers = parse_matcher_lines(self.cleaned_data["matchers"])
        if not matchers:
            raise forms.ValidationError("At least one matcher is required.")
        return matchers


class RuleForm(StyledForm):
    name = forms.CharField(max_length=100)
    position = forms.IntegerField(min_value=0, initial=100, help_text="Rules are tried in ascending order.")
    matchers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, help_text=MATCHER_HELP + " Empty matches every alert."
    )
    group_by = forms.CharField(help_text="Comma-separated label keys, e.g. alertname, service, cluster.")
    window_minutes = forms.IntegerField(min_value=1, initial=60)
    auto_resolve = forms.BooleanField(required=False, initial=True, help_text="Resolve when all alerts resolve.")
    reopen_cooldown_minutes = forms.IntegerField(min_value=0, initial=30)
    enabled = forms.BooleanField(required=False, initial=True)

    def clean_matchers(self) -> list[dict]:
        return parse_matcher_lines(self.cleaned_data["matchers"])

    def clean_group_by(self) -> list[str]:
        keys = [k.strip() for k in self.cleaned_data["group_by"].split(",") if k.strip()]
        if not keys:
            raise forms.ValidationError("At least one label key is required.")
        return keys


class ChannelForm(StyledForm):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=NotificationChannel.Kind.choices)
    target = forms.CharField(help_text="Email addresses (comma-separated) or the webhook URL.")
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhooks only: signing key (HMAC-SHA256). Stored encrypted and never shown again.",
    )
    severities = forms.MultipleChoiceField(
        choices=SEVERITY_CHOICES, required=False, widget=forms.CheckboxSelectMultiple, help_text="None ticked: any."
    )
    services = forms.CharField(required=False, help_text="Comma-separated services; empty: any.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # StyledForm gives other widgets "form-control", which draws checkboxes as empty text boxes.
        self.fields["severities"].widget.attrs["class"] = "form-check-input"


class CommentForm(StyledForm):
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        label="Comment",
        error_messages={"required": "a comment cannot be empty."},
    )


class AssignForm(StyledForm):
    assignee = forms.ModelChoiceField(
        queryset=User.objects.filter(is_active=True).order_by("username"), required=False, empty_label="Unassigned"
    )


class SeverityForm(StyledForm):
    severity_override = forms.ChoiceField(
        choices=[("", "From alerts"), *SEVERITY_CHOICES], required=False, label="Severity"
    )


def pretty_json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
