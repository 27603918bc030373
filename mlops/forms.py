"""MLOps page forms. They check what a person typed (and name the line that is wrong); the services decide."""

from __future__ import annotations

import math
import re

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from opsportal.portal.forms import StyledForm

from .models import ModelVersion, Stage, Webhook

KEY_VALUE_HELP = "One key=value per line."
KEY_VALUE_LINE = re.compile(r"^\s*([^=]+?)\s*=\s*(.*?)\s*$")


def parse_key_value_lines(text: str, *, numbers: bool = False) -> dict[str, str | float]:
    """'max_depth=6\\nlr = 0.1' -> {"max_depth": "6", "lr": "0.1"}; with `numbers`, values must be numbers.

    Blank lines are skipped; an error names the line it is on.
    """
    values: dict[str, str | float] = {}
    errors = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"Line {number} (“{line.strip()[:60]}”)"
        match = KEY_VALUE_LINE.match(line)
        if not match:
            errors.append(f"{where}: expected key=value.")
            continue
        key, value = match.groups()
        if numbers:
            try:
                value = _number(value)
            except ValueError:
                errors.append(f"{where}: {value!r} is not a number.")
                continue
        values[key] = value
    if errors:
        raise forms.ValidationError(errors)
    return values


def _number(text: str) -> int | float:
    """'10' -> 10, '0.91' -> 0.91; NaN and infinities are refused (no metric is compared against them)."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def key_value_lines(values: dict) -> str:
    return "\n".join(f"{key}={value}" for key, value in values.items())


def _textarea(rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows})


def _code_textarea(rows: int) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "class": "font-monospace", "spellcheck": "false"})


# --- Model list ----------------------------------------------------------------------------------------------------

SORTS = {
    "name": ("Name (A to Z)", ["name"]),
    "-name": ("Name (Z to A)", ["-name"]),
    "-updated": ("Recently updated", ["-updated_at", "name"]),
    "updated": ("Least recently updated", ["updated_at", "name"]),
    "-versions": ("Most versions", ["-version_count", "name"]),
    "versions": ("Fewest versions", ["version_count", "name"]),
}


class ModelSearchForm(StyledForm):
    q = forms.CharField(
        required=False,
        label="Search",
        max_length=300,
        help_text="Part of a name, or a tag as key=value (key= for any value).",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "name or tag key=value"}),
    )
    team = forms.ChoiceField(required=False, label="Owner team")
    stage = forms.ChoiceField(
        required=False,
        label="Has a version in",
        choices=[("", "Any stage"), *[(s.value, s.label) for s in Stage]],
    )
    sort = forms.ChoiceField(required=False, label="Sort by", choices=[(k, v[0]) for k, v in SORTS.items()])

    def __init__(self, *args, teams: list[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "All teams"), *[(team, team) for team in teams]]

    def tag_filter(self) -> tuple[str, str] | None:
        """The search as a tag (key, value) when it looks like key=value."""
        match = KEY_VALUE_LINE.match(self.cleaned_data.get("q") or "")
        return match.groups() if match else None


# --- Registered models ---------------------------------------------------------------------------------------------


class AliasListField(forms.CharField):
    """Comma- or space-separated alias names."""

    def to_python(self, value: object) -> list[str]:
        text = super().to_python(value)
        return [alias for alias in re.split(r"[,\s]+", text) if alias]

    def prepare_value(self, value: object) -> object:
        return ", ".join(value) if isinstance(value, list | tuple) else value


class PolicyFields(forms.Form):
    approval_required = forms.BooleanField(
        required=False, label="Moving a version to Production needs an admin's approval"
    )
    protected_aliases = AliasListField(
        required=False,
        label="Protected aliases",
        help_text="Setting one of these aliases needs an admin's approval (comma-separated, e.g. champion).",
    )
    archive_on_promotion = forms.BooleanField(
        required=False, initial=True, label="Archive the previous Production version when a promotion is approved"
    )


class RegisterModelForm(StyledForm, PolicyFields):
    name = forms.CharField(max_length=256, help_text="Unique; letters, digits, spaces, dots and dashes are fine.")
    description = forms.CharField(required=False, widget=_textarea(3), help_text="Markdown.")
    owner_team = forms.CharField(required=False, max_length=100, label="Owner team")
    tags = forms.CharField(required=False, widget=_code_textarea(2), help_text=KEY_VALUE_HELP)

    field_order = ["name", "description", "owner_team", "tags", "approval_required", "protected_aliases"]

    def clean_tags(self) -> dict:
        return parse_key_value_lines(self.cleaned_data["tags"])


class ModelDetailsForm(StyledForm):
    description = forms.CharField(required=False, widget=_textarea(6), help_text="Markdown.")
    owner_team = forms.CharField(required=False, max_length=100, label="Owner team")


class PolicyForm(StyledForm, PolicyFields):
    pass


class TagForm(StyledForm):
    key = forms.CharField(max_length=250)
    value = forms.CharField(max_length=5000, required=False)


class RenameForm(StyledForm):
    new_name = forms.CharField(max_length=256, label="New name")


class DeleteModelForm(StyledForm):
    confirm = forms.CharField(max_length=256, label="Type the model's name to confirm")


# --- Versions ------------------------------------------------------------------------------------------------------


class VersionFields(StyledForm):
    source = forms.CharField(
        required=False, max_length=2000, label="Source URI", help_text="Where the model files are, e.g. s3://…"
    )
    run_id = forms.CharField(required=False, max_length=64, label="Run ID")
    run_link = forms.URLField(required=False, max_length=2000, label="Run link", assume_scheme="https")
    framework = forms.CharField(required=False, max_length=100, help_text="e.g. sklearn 1.5, pytorch 2.4.")
    description = forms.CharField(required=False, widget=_textarea(3), help_text="Markdown.")
    params = forms.CharField(
        required=False, widget=_code_textarea(4), label="Parameters", help_text=f"{KEY_VALUE_HELP} e.g. max_depth=6"
    )
    metrics = forms.CharField(
        required=False, widget=_code_textarea(4), help_text=f"{KEY_VALUE_HELP} Numbers only, e.g. auc=0.91"
    )
    dataset = forms.CharField(required=False, max_length=500, help_text="What it was trained on (URI or name@version).")
    code_version = forms.CharField(required=False, max_length=100, label="Code version", help_text="e.g. a git commit.")
    model_card = forms.CharField(
        required=False,
        widget=_textarea(8),
        label="Model card",
        help_text="Markdown: intended use, limitations, evaluation data.",
    )

    def clean_params(self) -> dict:
        return parse_key_value_lines(self.cleaned_data["params"])

    def clean_metrics(self) -> dict:
        return parse_key_value_lines(self.cleaned_data["metrics"], numbers=True)

    @classmethod
    def initial_for(cls, version: ModelVersion) -> dict:
        initial = {name: getattr(version, name) for name in cls.base_fields if hasattr(version, name)}
        initial["params"] = key_value_lines(version.params or {})
        initial["metrics"] = key_value_lines(version.metrics or {})
        return initial


class RegisterVersionForm(VersionFields):
    tags = forms.CharField(required=False, widget=_code_textarea(2), help_text=KEY_VALUE_HELP)

    def clean_tags(self) -> dict:
        return parse_key_value_lines(self.cleaned_data["tags"])


class EditVersionForm(VersionFields):
    pass


# The stage a version usually goes to next, preselected in the stage form.
NEXT_STAGE = {Stage.NONE: Stage.STAGING, Stage.STAGING: Stage.PRODUCTION, Stage.PRODUCTION: Stage.ARCHIVED}


class TransitionForm(StyledForm):
    stage = forms.ChoiceField(label="Move to stage")
    archive_existing = forms.BooleanField(
        required=False, label="Archive the versions now in that stage", help_text="For Staging and Production."
    )
    reason = forms.CharField(required=False, max_length=1000, help_text="Shown to the approver, if one is needed.")

    def __init__(self, *args, current: str = "", archive: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["stage"].choices = [(s.value, s.label) for s in Stage if s.value != current]
        self.fields["archive_existing"].initial = archive
        self.fields["stage"].initial = NEXT_STAGE.get(current, Stage.STAGING)


class PromotionRequestForm(StyledForm):
    reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=_textarea(2),
        label="Why promote it?",
        help_text="e.g. the evaluation that shows it is better.",
    )


class AliasForm(StyledForm):
    alias = forms.CharField(max_length=255, help_text="Letters, digits, '_', '-', '.', e.g. champion.")
    version = forms.IntegerField(min_value=1, label="Version")


class VersionAliasForm(StyledForm):
    alias = forms.CharField(max_length=255, help_text="e.g. champion; it moves here from another version.")


class RollbackForm(StyledForm):
    version = forms.IntegerField(min_value=1)
    reason = forms.CharField(required=False, max_length=1000, label="Reason")


class ArtifactForm(StyledForm):
    file = forms.FileField(label="File")
    path = forms.CharField(
        required=False,
        max_length=500,
        label="Path",
        help_text="Within the version, e.g. model/model.pkl; empty: the file's name.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        limit = filesizeformat(settings.MLOPS_MAX_ARTIFACT_BYTES)
        self.fields["file"].help_text = f"Up to {limit}. Its size and SHA-256 are recorded."


class DeleteVersionForm(StyledForm):
    confirm = forms.IntegerField(label="Type the version number to confirm")


# --- Approvals and webhooks ----------------------------------------------------------------------------------------


class DecisionForm(StyledForm):
    comment = forms.CharField(required=False, max_length=2000, widget=_textarea(2))


class WebhookForm(StyledForm):
    name = forms.CharField(max_length=100)
    url = forms.URLField(max_length=2000, label="URL", assume_scheme="https", help_text="Receives a signed JSON POST.")
    events = forms.MultipleChoiceField(
        required=False,
        choices=Webhook.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )
    model = forms.CharField(
        required=False, max_length=256, label="Only for model", help_text="A registered model's name; empty: all."
    )
