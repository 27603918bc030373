"""Forms of the Monitoring tab. They check what a person typed; the monitoring services decide."""

from __future__ import annotations

import json

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from opsportal.portal.forms import StyledForm

from .drift import TYPES
from .models import MonitorCheck, RetrainingHook, Stage, TaskType

SEVERITIES = [("critical", "Critical"), ("error", "Error"), ("warning", "Warning"), ("info", "Info")]
QUALITY_RULES = [
    ("missing_share", "Missing share"),
    ("new_categories", "New categories share"),
    ("out_of_range", "Out-of-range share"),
    ("type_mismatches", "Type mismatch share"),
]
METRICS = [
    ("accuracy", "Accuracy"),
    ("precision", "Precision"),
    ("recall", "Recall"),
    ("f1", "F1"),
    ("roc_auc", "ROC AUC"),
    ("log_loss", "Log loss (a ceiling)"),
    ("mae", "MAE (a ceiling)"),
    ("rmse", "RMSE (a ceiling)"),
    ("mape", "MAPE (a ceiling)"),
    ("r2", "R²"),
]


def _describe_by_own_ids(form: forms.Form) -> None:
    """Point each widget's aria-describedby at its help text under the form's own `auto_id` (forms of one
    kind repeat on a page, one per row, each with ids of its own)."""
    for name, field in form.fields.items():
        if field.help_text:
            field.widget.attrs["aria-describedby"] = f"{form[name].auto_id}_help"


def _limit(setting: str) -> str:
    value = getattr(settings, setting, None)
    return f"Up to {filesizeformat(value)}." if value else ""


class MonitorForm(StyledForm):
    name = forms.CharField(max_length=100, initial="production")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    follow_alias = forms.CharField(
        required=False, max_length=255, label="Follow alias", help_text="e.g. champion; wins over the stage."
    )
    follow_stage = forms.ChoiceField(
        choices=[(s.value, s.label) for s in Stage if s.value != Stage.ARCHIVED],
        initial=Stage.PRODUCTION,
        label="Else follow the newest version in stage",
    )
    task = forms.ChoiceField(choices=TaskType.choices, initial=TaskType.CLASSIFICATION)
    id_column = forms.CharField(max_length=200, initial="id", label="Id column")
    timestamp_column = forms.CharField(max_length=200, initial="timestamp", label="Timestamp column")
    prediction_column = forms.CharField(max_length=200, initial="prediction", label="Prediction column")
    target_column = forms.CharField(max_length=200, initial="target", label="Target column")
    batch_minutes = forms.IntegerField(
        min_value=1, initial=60, label="Batch minutes", help_text="Logged predictions are cut into batches this long."
    )
    window_hours = forms.IntegerField(
        min_value=1, initial=24, label="Window hours", help_text="Scheduled checks look at this many hours."
    )
    schedule_minutes = forms.IntegerField(
        min_value=1, initial=60, label="Schedule minutes", help_text="How often scheduled checks run."
    )


class EditMonitorForm(MonitorForm):
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")

    @staticmethod
    def initial_of(monitor) -> dict:
        return {name: getattr(monitor, name) for name in EditMonitorForm.base_fields}


class ReferenceUploadForm(StyledForm):
    file = forms.FileField(label="CSV or Parquet file")
    version = forms.IntegerField(
        required=False, min_value=1, label="Version", help_text="The model version this data trained; optional."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        limit = _limit("MLOPS_REFERENCE_MAX_BYTES")
        self.fields["file"].help_text = f"{limit} The schema is inferred; edit the column types afterwards.".strip()
        self.fields["file"].widget.attrs["accept"] = ".csv,.parquet,.pq,text/csv"


class BatchUploadForm(StyledForm):
    file = forms.FileField(label="CSV or Parquet file")
    name = forms.CharField(required=False, max_length=500, help_text="Empty: the file's name.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        limit = _limit("MLOPS_BATCH_MAX_BYTES")
        self.fields["file"].help_text = f"{limit} Its columns must match the monitor's schema.".strip()
        self.fields["file"].widget.attrs["accept"] = ".csv,.parquet,.pq,text/csv"


class SchemaForm(StyledForm):
    """One type choice per column of the monitor's schema."""

    def __init__(self, *args, schema: dict, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.columns = list(schema)
        for index, (name, column) in enumerate(schema.items()):
            field = forms.ChoiceField(
                choices=[(t, t) for t in TYPES], initial=column.get("type"), label=name, required=True
            )
            field.role = column.get("role", "feature")
            self.fields[f"c{index}"] = field
        self._restyle()

    def _restyle(self) -> None:
        for field in self.fields.values():
            field.widget.attrs["class"] = "form-select form-select-sm"

    def types(self) -> dict[str, str]:
        """The chosen type of every column, by column name."""
        return {name: self.cleaned_data[f"c{index}"] for index, name in enumerate(self.columns)}


class CheckForm(StyledForm):
    name = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=MonitorCheck.Kind.choices)
    scope = forms.ChoiceField(choices=MonitorCheck.Scope.choices, initial=MonitorCheck.Scope.BATCH)
    column = forms.ChoiceField(required=False, help_text="Column drift and quality rules: the column.")
    rule = forms.ChoiceField(
        required=False,
        choices=[("", "—"), ("Quality rule", QUALITY_RULES), ("Metric", METRICS)],
        help_text="Quality rules and metrics: what is measured.",
    )
    bound = forms.FloatField(
        required=False,
        help_text="Quality: the largest share allowed; metric: the floor (a ceiling for error metrics); "
        "drift: overrides the drift share or the column's threshold.",
    )
    severity = forms.ChoiceField(choices=SEVERITIES, initial="warning")
    retraining = forms.ModelChoiceField(
        queryset=RetrainingHook.objects.none(), required=False, label="On breach, call retraining hook"
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, columns: list[str] = (), model=None, hooks: list[RetrainingHook] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["column"].choices = [("", "—"), *[(c, c) for c in columns]]
        retraining = self.fields["retraining"]
        if model is not None:
            retraining.queryset = RetrainingHook.objects.filter(model=model)
        # The choices come from the hooks the page has read already: one query for every form on it.
        retraining.choices = [("", "none"), *[(hook.pk, hook.name) for hook in hooks]]
        _describe_by_own_ids(self)

    @staticmethod
    def initial_of(check: MonitorCheck) -> dict:
        return {
            "name": check.name,
            "kind": check.kind,
            "scope": check.scope,
            "column": check.column,
            "rule": check.rule,
            "bound": check.bound,
            "severity": check.severity,
            "retraining": check.retraining_id,
            "enabled": check.enabled,
        }


class RetrainingHookForm(StyledForm):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=RetrainingHook.Kind.choices)
    url = forms.URLField(
        max_length=2000,
        label="URL",
        assume_scheme="https",
        help_text="GitHub: https://api.github.com/repos/OWNER/REPO/actions/workflows/FILE/dispatches; "
        "Airflow: https://HOST/api/v1/dags/DAG_ID/dagRuns.",
    )
    secret = forms.CharField(
        required=False,
        max_length=500,
        label="Signing secret",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Signs each call (X-OpsPortal-Signature). Write-only. Empty: a new hook gets one generated "
        "(shown once), an edit keeps the stored one.",
    )
    token = forms.CharField(
        required=False,
        max_length=2000,
        label="Token",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Sent as Authorization: Bearer (a GitHub token, an Airflow token). Write-only; empty keeps it.",
    )
    options = forms.CharField(
        required=False,
        label="Options (JSON)",
        widget=forms.Textarea(attrs={"rows": 2, "class": "font-monospace", "spellcheck": "false"}),
        help_text='GitHub: {"ref": "main", "inputs": {...}}; Airflow: {"conf": {...}}.',
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _describe_by_own_ids(self)

    def clean_options(self) -> dict:
        text = (self.cleaned_data.get("options") or "").strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
        if not isinstance(value, dict):
            raise forms.ValidationError('A JSON object, e.g. {"ref": "main"}.')
        return value

    @staticmethod
    def initial_of(hook: RetrainingHook) -> dict:
        return {
            "name": hook.name,
            "kind": hook.kind,
            "url": hook.url,
            "options": json.dumps(hook.options) if hook.options else "",
            "enabled": hook.enabled,
        }
