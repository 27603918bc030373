"""The check form of the pages: common fields, and each kind's options as prefixed fields (`http_url`, ...).

`CheckForm.service_values()` turns the cleaned form into the keyword arguments of
`services.create_check`/`update_check` (the chosen kind's options become `config`);
`CheckForm.field_for(service_field)` maps a service's field name (`config.url`,
`labels.team`) back onto the form field that shows the error.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib.auth.models import User

from opsportal.portal.forms import StyledForm

from .checks.config import DNS_RECORD_TYPES, HTTP_METHODS
from .models import SEVERITY_CHOICES, Check

# kind -> {config option: form field}
OPTION_FIELDS: dict[str, dict[str, str]] = {
    "http": {
        "url": "http_url",
        "method": "http_method",
        "headers": "http_headers",
        "body": "http_body",
        "expected_status": "http_expected_status",
        "max_latency_ms": "http_max_latency_ms",
        "keyword": "http_keyword",
        "keyword_regex": "http_keyword_regex",
        "keyword_absent": "http_keyword_absent",
        "json_path": "http_json_path",
        "json_expected": "http_json_expected",
        "follow_redirects": "http_follow_redirects",
        "verify_tls": "http_verify_tls",
        "tls_min_days_left": "http_tls_min_days_left",
    },
    "tcp": {"host": "tcp_host", "port": "tcp_port"},
    "dns": {
        "name": "dns_name",
        "record_type": "dns_record_type",
        "expected": "dns_expected",
        "nameservers": "dns_nameservers",
        "port": "dns_port",
    },
    "tls": {
        "host": "tls_host",
        "port": "tls_port",
        "server_name": "tls_server_name",
        "min_days_left": "tls_min_days_left",
        "verify": "tls_verify",
    },
    "heartbeat": {},
}
HEARTBEAT_FIELDS = ("schedule", "period_seconds", "grace_seconds", "cron", "tz")
COMMON_FIELDS = (
    "name", "kind", "service", "severity", "labels", "owner", "description", "interval_seconds",
    "timeout_seconds", "retries", "upside_down", "paused",
)  # fmt: skip


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


class CheckForm(StyledForm):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Check.Kind.choices, help_text="Cannot change once the check is saved.")
    service = forms.CharField(max_length=200, required=False, help_text="The incident's service when it is down.")
    severity = forms.ChoiceField(choices=SEVERITY_CHOICES, initial="error")
    labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One label per line: name=value (e.g. team=payments). Added to the alert.",
    )
    owner = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    interval_seconds = forms.IntegerField(
        required=False, initial=60, label="Interval (seconds)", help_text="1 s to a day (86400)."
    )
    timeout_seconds = forms.FloatField(required=False, initial=10.0, label="Timeout (seconds)")
    retries = forms.IntegerField(
        required=False,
        initial=0,
        help_text="Failed runs in a row that are retried (status pending) before the check is down.",
    )
    upside_down = forms.BooleanField(required=False, help_text="Down when the target answers, up when it fails.")
    paused = forms.BooleanField(required=False, help_text="Maintenance: not run, no alerts.")

    http_url = forms.CharField(required=False, label="URL", widget=forms.URLInput(attrs={"placeholder": "https://"}))
    http_method = forms.ChoiceField(
        choices=[(m, m) for m in HTTP_METHODS], required=False, initial="GET", label="Method"
    )
    http_headers = forms.CharField(
        required=False, label="Headers", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line: Name: value.",
    )  # fmt: skip
    http_body = forms.CharField(required=False, label="Body", widget=forms.Textarea(attrs={"rows": 2}))
    http_expected_status = forms.CharField(
        required=False, initial="200-299", label="Expected status codes",
        help_text="Codes, ranges or classes, separated by commas: 200-299, 301, 4xx.",
    )  # fmt: skip
    http_max_latency_ms = forms.FloatField(
        required=False, label="Latency limit (ms)", help_text="Slower answers count as down."
    )
    http_keyword = forms.CharField(required=False, label="Keyword", help_text="Text the body must contain.")
    http_keyword_regex = forms.BooleanField(required=False, label="Keyword is a regular expression")
    http_keyword_absent = forms.BooleanField(required=False, label="Keyword must be absent")
    http_json_path = forms.CharField(
        required=False, label="JSON path", help_text="e.g. $.status; the body must be JSON with a match."
    )
    http_json_expected = forms.CharField(
        required=False, label="JSON path equals",
        help_text='The value the path must have, as JSON ("ok", 3, true) or plain text; empty: any match.',
    )  # fmt: skip
    http_follow_redirects = forms.BooleanField(required=False, initial=True, label="Follow redirects")
    http_verify_tls = forms.BooleanField(required=False, initial=True, label="Verify the TLS certificate")
    http_tls_min_days_left = forms.IntegerField(
        required=False, initial=0, label="TLS expiry (days)",
        help_text="Down when the certificate expires within this many days (0: not checked).",
    )  # fmt: skip

    tcp_host = forms.CharField(required=False, label="Host")
    tcp_port = forms.IntegerField(required=False, label="Port")

    dns_name = forms.CharField(required=False, label="Name", help_text="e.g. example.com")
    dns_record_type = forms.ChoiceField(
        choices=[(t, t) for t in DNS_RECORD_TYPES], required=False, initial="A", label="Record type"
    )
    dns_expected = forms.CharField(
        required=False, label="Expected answers", widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line; empty: any answer.",
    )  # fmt: skip
    dns_nameservers = forms.CharField(
        required=False, label="Nameserver", help_text="IP addresses, separated by commas; empty: the system's."
    )
    dns_port = forms.IntegerField(required=False, initial=53, label="Port")

    tls_host = forms.CharField(required=False, label="Host")
    tls_port = forms.IntegerField(required=False, initial=443, label="Port")
    tls_server_name = forms.CharField(required=False, label="Server name (SNI)", help_text="Empty: the host.")
    tls_min_days_left = forms.IntegerField(required=False, initial=14, label="Days before expiry")
    tls_verify = forms.BooleanField(required=False, initial=True, label="Verify the certificate chain")

    schedule = forms.ChoiceField(
        choices=[("period", "A period and a grace time"), ("cron", "A cron expression")],
        required=False,
        initial="period",
        widget=forms.RadioSelect,
        label="Expected",
    )
    period_seconds = forms.IntegerField(required=False, initial=86400, label="Period (seconds)")
    grace_seconds = forms.IntegerField(
        required=False,
        initial=300,
        label="Grace (seconds)",
        help_text="How late a ping may be before the check is down.",
    )
    cron = forms.CharField(required=False, max_length=100, help_text="e.g. 0 3 * * * (every day at 03:00).")
    tz = forms.CharField(
        required=False, max_length=64, initial="UTC", label="Time zone", help_text="e.g. Europe/Berlin."
    )

    def __init__(self, *args: Any, check: Check | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.check = check
        self.fields["owner"].queryset = User.objects.filter(is_active=True).order_by("username")
        if check is not None:
            self.fields["kind"].disabled = True
            self.fields["kind"].initial = check.kind
        self.fields["schedule"].widget.attrs["class"] = "form-check-input"

    @classmethod
    def initial_for(cls, check: Check) -> dict[str, Any]:
        """The form's values for an existing check."""
        initial: dict[str, Any] = {name: getattr(check, name) for name in COMMON_FIELDS if name != "owner"}
        initial["owner"] = check.owner_id
        initial["labels"] = "\n".join(f"{k}={v}" for k, v in (check.labels or {}).items())
        config = check.config or {}
        for option, name in OPTION_FIELDS.get(check.kind, {}).items():
            value = config.get(option)
            if option == "headers":
                value = "\n".join(f"{k}: {v}" for k, v in (value or {}).items())
            elif option == "expected_status":
                value = ", ".join(str(v) for v in value or [])
            elif option == "expected":
                value = "\n".join(value or [])
            elif option == "nameservers":
                value = ", ".join(value or [])
            elif option == "json_expected":
                value = "" if value is None else json.dumps(value)
            if value is not None:
                initial[name] = value
        initial.update(
            schedule="cron" if check.cron else "period", period_seconds=check.period_seconds,
            grace_seconds=check.grace_seconds, cron=check.cron, tz=check.tz,
        )  # fmt: skip
        return initial

    def chosen_kind(self) -> str:
        """The kind the form is for: the check's own, or what was chosen (HTTP before anything is)."""
        if self.check is not None:
            return self.check.kind
        value = self["kind"].value()
        return value if value in Check.Kind.values else Check.Kind.HTTP

    def clean_labels(self) -> dict[str, str]:
        labels = {}
        for line in _lines(self.cleaned_data.get("labels", "")):
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise forms.ValidationError(f"“{line[:60]}” is not name=value.")
            labels[key.strip()] = value.strip()
        return labels

    def clean_http_headers(self) -> dict[str, str]:
        headers = {}
        for line in _lines(self.cleaned_data.get("http_headers", "")):
            key, sep, value = line.partition(":")
            if not sep or not key.strip():
                raise forms.ValidationError(f"“{line[:60]}” is not Name: value.")
            headers[key.strip()] = value.strip()
        return headers

    def config(self, kind: str) -> dict[str, Any]:
        """The chosen kind's options, as `config` (the service fills and checks them)."""
        data = self.cleaned_data
        config: dict[str, Any] = {}
        for option, name in OPTION_FIELDS.get(kind, {}).items():
            value = data.get(name)
            if option == "expected_status":
                value = [item.strip() for item in (value or "").split(",") if item.strip()] or ["200-299"]
            elif option == "expected":
                value = _lines(value)
            elif option == "nameservers":
                value = [item.strip() for item in (value or "").replace(" ", ",").split(",") if item.strip()]
            elif option == "json_expected":
                value = _json_or_text(value)
            elif _left_to_default(kind, option, value):
                continue
            config[option] = value
        return config

    def service_values(self) -> dict[str, Any]:
        """Keyword arguments for create_check/update_check."""
        data = self.cleaned_data
        kind = self.chosen_kind()
        values: dict[str, Any] = {name: data.get(name) for name in COMMON_FIELDS}
        values["kind"] = kind
        values["config"] = self.config(kind)
        values["description"] = data.get("description") or ""
        for name, default in (("interval_seconds", 60), ("timeout_seconds", 10.0), ("retries", 0)):
            if values[name] is None:
                values[name] = default
        if kind == Check.Kind.HEARTBEAT:
            cron = data.get("schedule") == "cron"
            values.update(
                period_seconds=None if cron else data.get("period_seconds"),
                cron=data.get("cron", "") if cron else "",
                grace_seconds=300 if data.get("grace_seconds") is None else data["grace_seconds"],
                tz=data.get("tz") or "UTC",
            )
        return values

    def field_for(self, service_field: str | None) -> str | None:
        """The form field that shows a service error about `service_field` (None: the form as a whole)."""
        if not service_field:
            return None
        head, _, rest = service_field.partition(".")
        if head == "config" and rest:
            option = rest.split(".")[0]
            return OPTION_FIELDS.get(self.chosen_kind(), {}).get(option)
        if head in self.fields:
            return head
        return None

    def add_service_error(self, field: str | None, message: str) -> None:
        name = self.field_for(field)
        if name in self.fields and not self.fields[name].disabled:
            self.add_error(name, message)
        else:
            self.add_error(None, f"{field}: {message}" if field else message)


def _left_to_default(kind: str, option: str, value: object) -> bool:
    """An option left empty that has a default (method, record type, ports but TCP's, expiry days)."""
    if option in ("method", "record_type"):
        return not value
    if option == "port":
        return value is None and kind != "tcp"
    return option in ("tls_min_days_left", "min_days_left") and value is None


def _json_or_text(value: str | None) -> Any:
    """A JSON value when the text is one ("ok", 3, true), else the text itself; empty: None."""
    text = (value or "").strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
