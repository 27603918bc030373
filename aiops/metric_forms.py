"""Forms of the metric collection pages: scrape targets, Prometheus-compatible sources, watched queries.

Each form's field names are the service's keyword arguments, so a service's
`InvalidInput(field=...)` lands under the field of the same name (`add_service_error`).
Secrets (a bearer token or a basic-auth password) are write-only: the field is never
filled back; left blank on an edit the stored one is kept, and auth "none" clears it.
"""

from __future__ import annotations

from typing import Any

from django import forms

from opsportal.errors import ServiceError
from opsportal.portal.forms import StyledForm

from .models import PromSource, ScrapeTarget, WatchedQuery

SECRET_KEPT = "Set — leave blank to keep it; choose auth “None” to clear it."
SECRET_NEW = "The bearer token, or the basic-auth password. Stored encrypted, never shown again."


def labels_text(labels: dict[str, str]) -> str:
    return "\n".join(f"{key}={value}" for key, value in (labels or {}).items())


def parse_labels(text: str) -> dict[str, str]:
    """`name=value` lines (blank lines skipped); the service checks the names."""
    labels = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise forms.ValidationError(f"“{line[:60]}” is not name=value.")
        labels[key.strip()] = value.strip()
    return labels


class ServiceForm(StyledForm):
    """A form whose cleaned data are a service's keyword arguments."""

    def add_service_error(self, exc: ServiceError) -> None:
        if exc.field in self.fields and not self.fields[exc.field].disabled:
            self.add_error(exc.field, exc.message)
        else:
            self.add_error(None, str(exc))

    def problem(self) -> str:
        """Every error in one line, each named by its field's label (what a refused Test shows)."""
        parts = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            parts.append(f"{label}: {' '.join(errors)}" if label else " ".join(errors))
        return "; ".join(parts)


class RemoteAuthForm(ServiceForm):
    """Auth fields shared by targets and sources."""

    auth = forms.ChoiceField(choices=ScrapeTarget.Auth.choices, initial="none", label="Auth")
    username = forms.CharField(required=False, max_length=200, label="User name", help_text="For basic auth.")
    secret = forms.CharField(
        required=False,
        label="Token or password",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=SECRET_NEW,
    )

    def __init__(self, *args: Any, stored: ScrapeTarget | PromSource | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored = stored
        self.has_secret = bool(stored is not None and stored.secret_encrypted)
        if self.has_secret:
            self.fields["secret"].help_text = SECRET_KEPT
            self.fields["secret"].widget.attrs["placeholder"] = "set — leave blank to keep"

    def secret_value(self) -> str | None:
        """What to pass as `secret`: None keeps the stored one (or sets none)."""
        return self.cleaned_data.get("secret") or None


class TargetForm(RemoteAuthForm):
    name = forms.CharField(max_length=100, help_text="Its series get the label job=<name>.")
    url = forms.CharField(
        max_length=2000,
        label="URL",
        widget=forms.URLInput(attrs={"placeholder": "http://host:9100/metrics"}),
        help_text="Serves Prometheus text format or OpenMetrics.",
    )
    interval_seconds = forms.IntegerField(initial=60, label="Interval (seconds)", help_text="1 s to a day (86400).")
    timeout_seconds = forms.FloatField(initial=10.0, label="Timeout (seconds)", help_text="At most the interval.")
    labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line: name=value (e.g. env=prod). Added to every series it yields.",
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="Scraped on its interval.")
    field_order = ["name", "url", "interval_seconds", "timeout_seconds", "labels", "auth", "username", "secret"]

    @classmethod
    def initial_for(cls, target: ScrapeTarget) -> dict[str, Any]:
        return {
            "name": target.name, "url": target.url, "interval_seconds": target.interval_seconds,
            "timeout_seconds": target.timeout_seconds, "labels": labels_text(target.labels), "auth": target.auth,
            "username": target.username, "enabled": target.enabled,
        }  # fmt: skip

    def clean_labels(self) -> dict[str, str]:
        return parse_labels(self.cleaned_data.get("labels", ""))

    def service_values(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {name: data[name] for name in ("name", "url", "interval_seconds", "timeout_seconds", "labels")}
        return {**values, "auth": data["auth"], "username": data["username"], "enabled": data["enabled"],
                "secret": self.secret_value()}  # fmt: skip

    def test_values(self) -> dict[str, Any]:
        """Keyword arguments of services.test_scrape_target."""
        data = self.cleaned_data
        return {
            "name": data["name"], "url": data["url"], "auth": data["auth"], "username": data["username"],
            "secret": data.get("secret") or "", "timeout_seconds": data["timeout_seconds"], "labels": data["labels"],
            "target": self.stored,
        }  # fmt: skip


class TestTargetForm(TargetForm):
    """Test needs the URL and how to reach it; name and interval may still be empty."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("name", "interval_seconds", "timeout_seconds"):
            self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["timeout_seconds"] = 10.0 if data.get("timeout_seconds") is None else data["timeout_seconds"]
        data["name"] = data.get("name") or "test"
        return data


class TargetFilterForm(StyledForm):
    q = forms.CharField(required=False, label="Search", help_text="Name or URL.")
    state = forms.MultipleChoiceField(
        choices=[("up", "Up"), ("down", "Down"), ("pending", "Not scraped yet"), ("paused", "Disabled")],
        required=False,
    )


class SourceForm(RemoteAuthForm):
    name = forms.CharField(max_length=100)
    base_url = forms.CharField(
        max_length=2000,
        label="URL",
        widget=forms.URLInput(attrs={"placeholder": "http://prometheus:9090"}),
        help_text="The API's root: Prometheus, Thanos, Mimir, VictoriaMetrics.",
    )
    timeout_seconds = forms.FloatField(initial=30.0, label="Timeout (seconds)")
    enabled = forms.BooleanField(required=False, initial=True, help_text="Its watched queries are pulled.")
    field_order = ["name", "base_url", "timeout_seconds", "auth", "username", "secret", "enabled"]

    @classmethod
    def initial_for(cls, source: PromSource) -> dict[str, Any]:
        return {
            "name": source.name, "base_url": source.base_url, "timeout_seconds": source.timeout_seconds,
            "auth": source.auth, "username": source.username, "enabled": source.enabled,
        }  # fmt: skip

    def service_values(self) -> dict[str, Any]:
        data = self.cleaned_data
        values = {name: data[name] for name in ("name", "base_url", "timeout_seconds", "auth", "username", "enabled")}
        return {**values, "secret": self.secret_value()}

    def test_values(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "base_url": data["base_url"], "auth": data["auth"], "username": data["username"],
            "secret": data.get("secret") or "", "timeout_seconds": data["timeout_seconds"], "source": self.stored,
        }  # fmt: skip


class TestSourceForm(SourceForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("name", "timeout_seconds"):
            self.fields[name].required = False

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        data["timeout_seconds"] = 30.0 if data.get("timeout_seconds") is None else data["timeout_seconds"]
        return data


class WatchedQueryForm(ServiceForm):
    """A watched query; `service` is stored as the `service` label of every series it yields."""

    name = forms.CharField(
        max_length=200, help_text="The metric name its series are stored under (letters, digits, '_' and ':')."
    )
    query = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "class": "font-monospace"}), label="PromQL")
    interval_seconds = forms.IntegerField(initial=60, label="Pull every (seconds)", help_text="1 s to a day (86400).")
    step_seconds = forms.IntegerField(initial=60, label="Step (seconds)", help_text="The resolution stored.")
    service = forms.CharField(
        required=False, max_length=100, help_text="Stored as the label service=<this> (e.g. for threshold rules)."
    )
    labels = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="One per line: name=value. Added to every series it stores.",
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="Pulled on its interval.")

    @classmethod
    def initial_for(cls, watched: WatchedQuery) -> dict[str, Any]:
        labels = dict(watched.labels)
        service = labels.pop("service", "")
        return {
            "name": watched.name, "query": watched.query, "interval_seconds": watched.interval_seconds,
            "step_seconds": watched.step_seconds, "service": service, "labels": labels_text(labels),
            "enabled": watched.enabled,
        }  # fmt: skip

    def clean_labels(self) -> dict[str, str]:
        labels = parse_labels(self.cleaned_data.get("labels", ""))
        if "service" in labels:
            raise forms.ValidationError("Set the service in its own field.")
        return labels

    def service_values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        service = data.pop("service").strip()
        data["labels"] = {**data["labels"], "service": service} if service else data["labels"]
        return data
