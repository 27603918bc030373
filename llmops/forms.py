"""Forms of the LLMOps pages. They check shapes (JSON, numbers, files); the rules live in `llmops.services`."""

from __future__ import annotations

import json
from urllib.parse import urlparse

from django import forms
from django.db.models import Prefetch

from opsportal.portal.forms import StyledForm

from . import scorers
from .models import Dataset, EvalRun, LLMModel, PromptLabel, PromptVersion
from .templating import ROLES

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
LABEL_SUGGESTIONS = ["production", "staging", "latest", "canary"]
RESPONSE_FORMATS = [("", "Provider default"), ("text", "Text"), ("json_object", "JSON object"),
                    ("json_schema", "JSON schema")]  # fmt: skip
# Parameters with their own fields on the version form; any others go in "Other parameters".
OWN_PARAMETERS = {"temperature", "max_tokens", "response_format"}


def parse_json(text: str, what: str, kind: type | None = dict, empty: object = None) -> object:
    """`text` as JSON of the given kind; a ValidationError that says what is wrong and where."""
    if not (text or "").strip():
        return empty
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if kind is dict and not isinstance(value, dict):
        raise forms.ValidationError(f'{what} must be a JSON object, like {{"key": "value"}}.')
    if kind is list and not isinstance(value, list):
        raise forms.ValidationError(f"{what} must be a JSON list.")
    return value


def json_text(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) if value not in (None, {}, []) else ""


class JSONTextarea(forms.Textarea):
    def __init__(self, rows: int = 3) -> None:
        super().__init__(attrs={"rows": rows, "class": "font-monospace", "spellcheck": "false"})


def _check_upload(upload) -> object:
    if upload.size > MAX_UPLOAD_BYTES:
        raise forms.ValidationError(f"The file is {upload.size / 1e6:.1f} MB; at most {MAX_UPLOAD_BYTES // 10**6} MB.")
    if not upload.name.lower().endswith((".csv", ".jsonl", ".ndjson", ".json")):
        raise forms.ValidationError("Upload a .csv or .jsonl file.")
    return upload


# --- Providers and prices --------------------------------------------------------------------------------------------


class ProviderForm(StyledForm):
    name = forms.CharField(max_length=100)
    base_url = forms.CharField(
        max_length=500,
        label="Base URL",
        help_text="The OpenAI-compatible API root, e.g. https://api.openai.com/v1 or http://vllm:8000/v1.",
    )
    api_key = forms.CharField(
        required=False,
        label="API key",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted and never shown again. Leave empty to keep the stored key.",
    )
    remove_api_key = forms.BooleanField(required=False, label="Remove the stored API key")
    default_headers = forms.CharField(
        required=False,
        widget=JSONTextarea(2),
        help_text='Extra headers as JSON, e.g. {"OpenAI-Organization": "org-1"}.',
    )
    timeout_seconds = forms.FloatField(min_value=1, max_value=600, initial=60, label="Timeout (seconds)")
    max_concurrency = forms.IntegerField(
        min_value=1, max_value=256, initial=8, help_text="Requests in flight at once, across every run."
    )
    max_retries = forms.IntegerField(min_value=0, max_value=10, initial=4, help_text="On 429, 5xx and timeouts.")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, creating: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if creating:
            del self.fields["remove_api_key"]
            del self.fields["enabled"]
            self.fields["api_key"].help_text = "Stored encrypted and never shown again. Empty for servers without keys."

    def clean_base_url(self) -> str:
        url = self.cleaned_data["base_url"].strip()
        parsed = urlparse(url)
        # Not URLField: it refuses host names without a dot, such as a compose service "vllm".
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise forms.ValidationError("Enter an http:// or https:// URL, e.g. http://localhost:8000/v1.")
        return url

    def clean_default_headers(self) -> dict:
        return parse_json(self.cleaned_data["default_headers"], "Default headers", empty={})

    @staticmethod
    def initial_for(provider) -> dict:
        return {
            "name": provider.name,
            "base_url": provider.base_url,
            "default_headers": json_text(provider.default_headers),
            "timeout_seconds": provider.timeout_seconds,
            "max_concurrency": provider.max_concurrency,
            "max_retries": provider.max_retries,
            "enabled": provider.enabled,
        }


def _cache_price_field(label: str, help_text: str = "", placeholder: str = "") -> forms.DecimalField:
    """A prompt-cache price: empty means cached tokens are priced as input tokens."""
    widget = forms.NumberInput(attrs={"placeholder": placeholder} if placeholder else {})
    return forms.DecimalField(
        required=False, min_value=0, max_digits=14, decimal_places=6, label=label, help_text=help_text, widget=widget
    )


CACHE_READ_HELP = "Input tokens read from the prompt cache. Empty: priced as input."
CACHE_WRITE_HELP = "Input tokens written to the prompt cache. Empty: priced as input."


class AddModelForm(StyledForm):
    name = forms.CharField(max_length=200, label="Model id", help_text="As the provider names it, e.g. gpt-4o-mini.")
    input_per_million = forms.DecimalField(
        required=False, min_value=0, max_digits=12, decimal_places=4, label="Input USD / 1M tokens"
    )
    output_per_million = forms.DecimalField(
        required=False, min_value=0, max_digits=12, decimal_places=4, label="Output USD / 1M tokens"
    )
    cache_read_per_million = _cache_price_field("Cache read USD / 1M tokens", CACHE_READ_HELP)
    cache_write_per_million = _cache_price_field("Cache write USD / 1M tokens", CACHE_WRITE_HELP)


class ModelPriceForm(StyledForm):
    input_per_million = forms.DecimalField(min_value=0, max_digits=12, decimal_places=4, label="Input USD / 1M")
    output_per_million = forms.DecimalField(min_value=0, max_digits=12, decimal_places=4, label="Output USD / 1M")
    cache_read_per_million = _cache_price_field("Cache read USD / 1M", placeholder="cache read: as input")
    cache_write_per_million = _cache_price_field("Cache write USD / 1M", placeholder="cache write: as input")


class TestConnectionForm(StyledForm):
    model_name = forms.CharField(max_length=200, label="Model id")


class PriceForm(StyledForm):
    model_name = forms.CharField(
        max_length=200, label="Model name", help_text="Exact (gpt-4o-mini) or a prefix ending in * (claude-3-5-*)."
    )
    input_per_million = forms.DecimalField(min_value=0, max_digits=12, decimal_places=4, label="Input USD / 1M")
    output_per_million = forms.DecimalField(min_value=0, max_digits=12, decimal_places=4, label="Output USD / 1M")
    cache_read_per_million = _cache_price_field("Cache read USD / 1M", CACHE_READ_HELP)
    cache_write_per_million = _cache_price_field("Cache write USD / 1M", CACHE_WRITE_HELP)


# --- Prompts -------------------------------------------------------------------------------------------------------


class PromptSearchForm(StyledForm):
    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(attrs={"type": "search"}))
    label = forms.CharField(required=False, label="With label")


class PromptCreateForm(StyledForm):
    name = forms.CharField(max_length=200, help_text="Letters, digits, '_', '-', '.', '/'; e.g. support/triage.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    system = forms.CharField(required=False, label="System message", widget=forms.Textarea(attrs={"rows": 3}))
    user = forms.CharField(
        label="User message",
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Use {{ variable }} placeholders; dataset items fill them.",
    )
    model = forms.CharField(max_length=200, required=False, label="Default model", help_text="e.g. gpt-4o-mini.")

    def messages(self) -> list[dict]:
        data = self.cleaned_data
        system = [{"role": "system", "content": data["system"]}] if data["system"].strip() else []
        return [*system, {"role": "user", "content": data["user"]}]


class PromptDetailsForm(StyledForm):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))


class MessageForm(StyledForm):
    role = forms.ChoiceField(choices=[(r, r) for r in ROLES])
    content = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "class": "font-monospace", "spellcheck": "false"}),
        strip=False,
    )


MessageFormSet = forms.formset_factory(MessageForm, extra=0, min_num=1, validate_min=True, max_num=50)


class VersionForm(StyledForm):
    model = forms.CharField(max_length=200, required=False, label="Model", help_text="The default model name.")
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(required=False, min_value=1, max_value=1_000_000, label="Max tokens")
    response_format = forms.ChoiceField(choices=RESPONSE_FORMATS, required=False, label="Response format")
    json_schema = forms.CharField(
        required=False,
        label="JSON schema",
        widget=JSONTextarea(4),
        help_text='For the JSON schema format: {"name": "answer", "schema": {...}, "strict": true}.',
    )
    other_parameters = forms.CharField(
        required=False,
        label="Other parameters",
        widget=JSONTextarea(2),
        help_text='JSON: top_p, stop, seed, presence_penalty, frequency_penalty, e.g. {"top_p": 0.9}.',
    )
    commit_message = forms.CharField(max_length=500, required=False, label="Commit message",
                                     help_text="What changed and why.")  # fmt: skip

    def clean_other_parameters(self) -> dict:
        return parse_json(self.cleaned_data["other_parameters"], "Other parameters", empty={})

    def clean(self) -> dict:
        data = super().clean()
        if data.get("response_format") == "json_schema":
            try:
                schema = parse_json(data.get("json_schema") or "", "The JSON schema")
            except forms.ValidationError as exc:
                self.add_error("json_schema", exc)
            else:
                if not schema:
                    self.add_error("json_schema", "The JSON schema format needs a schema.")
                data["json_schema"] = schema
        return data

    def parameters(self) -> dict:
        data = self.cleaned_data
        parameters = dict(data.get("other_parameters") or {})
        if data.get("temperature") is not None:
            parameters["temperature"] = data["temperature"]
        if data.get("max_tokens") is not None:
            parameters["max_tokens"] = data["max_tokens"]
        if data.get("response_format") == "json_schema":
            parameters["response_format"] = {"type": "json_schema", "json_schema": data["json_schema"]}
        elif data.get("response_format"):
            parameters["response_format"] = {"type": data["response_format"]}
        return parameters

    @staticmethod
    def initial_for(version: PromptVersion | None) -> dict:
        if version is None:
            return {}
        parameters = dict(version.parameters or {})
        response_format = parameters.get("response_format") or {}
        others = {k: v for k, v in parameters.items() if k not in OWN_PARAMETERS}
        return {
            "model": version.model,
            "temperature": parameters.get("temperature"),
            "max_tokens": parameters.get("max_tokens"),
            "response_format": response_format.get("type", ""),
            "json_schema": json_text(response_format.get("json_schema")),
            "other_parameters": json_text(others),
        }


class LabelForm(StyledForm):
    label = forms.CharField(max_length=100, help_text="e.g. production, staging.")
    version = forms.TypedChoiceField(coerce=int, choices=())
    override = forms.BooleanField(required=False, label="Override the release gate")
    reason = forms.CharField(max_length=500, required=False, help_text="Needed when the gate is overridden.")

    def __init__(self, *args, versions: list[int] = (), is_admin: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v, f"v{v}") for v in versions]
        self.fields["label"].widget.attrs["list"] = "label-suggestions"
        if not is_admin:
            del self.fields["override"]
            del self.fields["reason"]

    def clean_label(self) -> str:
        return self.cleaned_data["label"].strip()


class GateForm(StyledForm):
    gate_dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name"), required=False, label="Gate dataset", empty_label="No gate"
    )
    gate_min_pass_rate = forms.FloatField(
        required=False, min_value=0, max_value=100, label="Minimum pass rate (%)", help_text="e.g. 90."
    )

    def clean(self) -> dict:
        data = super().clean()
        dataset, rate = data.get("gate_dataset"), data.get("gate_min_pass_rate")
        if dataset is not None and rate is None and "gate_min_pass_rate" not in self.errors:
            self.add_error("gate_min_pass_rate", "Give the pass rate the gate requires.")
        if dataset is None and rate is not None:
            self.add_error("gate_dataset", "Choose the dataset the gate runs on.")
        return data

    @staticmethod
    def values(data: dict) -> dict:
        """The cleaned data as `update_prompt` takes it: the rate as a fraction, none without a dataset."""
        rate = data.get("gate_min_pass_rate")
        dataset = data.get("gate_dataset")
        return {"gate_dataset": dataset, "gate_min_pass_rate": None if dataset is None else rate / 100}


class PreviewForm(StyledForm):
    variables = forms.CharField(
        required=False, widget=JSONTextarea(3), help_text='The variables as JSON, e.g. {"country": "France"}.'
    )

    def clean_variables(self) -> dict:
        return parse_json(self.cleaned_data["variables"], "Variables", empty={})


# --- Datasets ------------------------------------------------------------------------------------------------------


class DatasetForm(StyledForm):
    name = forms.CharField(max_length=200, help_text="Letters, digits, '_', '-', '.', '/'.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ItemForm(StyledForm):
    input = forms.CharField(
        label="Input variables", widget=JSONTextarea(3), help_text='A JSON object, e.g. {"country": "France"}.'
    )
    expected_output = forms.CharField(required=False, label="Expected output", widget=forms.Textarea(attrs={"rows": 2}))
    context = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}),
                              help_text="Reference text for faithfulness scorers.")  # fmt: skip
    metadata = forms.CharField(required=False, widget=JSONTextarea(2), help_text="A JSON object.")
    tags = forms.CharField(required=False, help_text="Comma-separated.")

    def clean_input(self) -> dict:
        value = parse_json(self.cleaned_data["input"], "Input", empty={})
        if not value:
            raise forms.ValidationError('Give at least one variable, e.g. {"question": "..."}.')
        return value

    def clean_metadata(self) -> dict:
        return parse_json(self.cleaned_data["metadata"], "Metadata", empty={})

    def clean_tags(self) -> list[str]:
        return [tag.strip() for tag in self.cleaned_data["tags"].split(",") if tag.strip()]

    @staticmethod
    def initial_for(item) -> dict:
        return {
            "input": json.dumps(item.input, indent=2, ensure_ascii=False),
            "expected_output": item.expected_output,
            "context": item.context,
            "metadata": json_text(item.metadata),
            "tags": ", ".join(item.tags or []),
        }


class ImportForm(StyledForm):
    file = forms.FileField(
        help_text="CSV with a header row, or JSONL (one JSON object per line). Columns: input (JSON) or one column "
        "per variable, expected_output, context, metadata (JSON), tags."
    )

    def clean_file(self):
        return _check_upload(self.cleaned_data["file"])


class DeleteConfirmForm(StyledForm):
    confirm = forms.CharField(label="Type the name to confirm")


# --- Runs ----------------------------------------------------------------------------------------------------------


class VersionChoiceField(forms.ModelMultipleChoiceField):
    """Prompt versions grouped by prompt, each shown as "name vN" with its labels."""

    def label_from_instance(self, obj: PromptVersion) -> str:
        labels = [label.name for label in obj.labels.all()]
        suffix = f"  [{', '.join(labels)}]" if labels else ""
        return f"{obj.prompt.name} v{obj.version}{suffix}"

    def group_choices(self) -> None:
        """Show the choices in one <optgroup> per prompt (validation still uses the queryset)."""
        groups: dict[str, list] = {}
        for version in self.queryset:
            groups.setdefault(version.prompt.name, []).append((version.pk, self.label_from_instance(version)))
        self.choices = list(groups.items())


class ModelChoiceLabel(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: LLMModel) -> str:
        return f"{obj.provider.name}/{obj.name}"


class JudgeChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: LLMModel) -> str:
        return f"{obj.provider.name}/{obj.name}"


def _versions_queryset():
    return (
        PromptVersion.objects.select_related("prompt")
        .prefetch_related(Prefetch("labels", queryset=PromptLabel.objects.order_by("name")))
        .order_by("prompt__name", "-version")
    )


def _models_queryset():
    return LLMModel.objects.select_related("provider").filter(provider__enabled=True).order_by("provider__name", "name")


class RunForm(StyledForm):
    name = forms.CharField(max_length=200, required=False, help_text="Empty: named after the versions and dataset.")
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"))
    prompt_versions = VersionChoiceField(
        queryset=PromptVersion.objects.none(),
        label="Prompt versions",
        widget=forms.CheckboxSelectMultiple,
        help_text="Tick one or more; each version x model is one column.",
    )
    models = ModelChoiceLabel(
        queryset=LLMModel.objects.none(), widget=forms.CheckboxSelectMultiple, help_text="Tick one or more."
    )
    judge_model = JudgeChoiceField(
        queryset=LLMModel.objects.none(),
        required=False,
        label="Judge model",
        empty_label="None",
        help_text="Grades llm-rubric scorers.",
    )
    concurrency = forms.IntegerField(
        required=False, min_value=1, max_value=256, help_text="Requests in flight; empty: each provider's limit."
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["prompt_versions"].queryset = _versions_queryset()
        self.fields["prompt_versions"].group_choices()
        self.fields["models"].queryset = _models_queryset()
        self.fields["judge_model"].queryset = _models_queryset()

    def _chosen(self, name: str) -> set[str]:
        value = self[name].value() or []
        return {str(item) for item in (value if isinstance(value, list | tuple) else [value])}

    def checklist(self, name: str) -> list[dict]:
        """A multiple choice as groups of checkboxes (versions by prompt, models by provider), with what is
        known against a model's provider (no key, a failing last test)."""
        chosen = self._chosen(name)
        field = self.fields[name]
        groups: dict[str, dict] = {}
        for obj in field.queryset:
            group = obj.prompt.name if name == "prompt_versions" else obj.provider.name
            entry = groups.setdefault(group, {"name": group, "items": [], "problem": ""})
            if name == "models":
                entry["problem"] = obj.provider.problem
            entry["items"].append({
                "value": str(obj.pk), "label": field.label_from_instance(obj), "chosen": str(obj.pk) in chosen,
                "id": f"id_{self.add_prefix(name)}_{obj.pk}",
            })  # fmt: skip
        return list(groups.values())

    def provider_problems(self) -> list[tuple[object, str]]:
        """(provider, problem) of each enabled provider whose runs will likely error."""
        providers = {model.provider_id: model.provider for model in self.fields["models"].queryset}
        return [(provider, provider.problem) for provider in providers.values() if provider.problem]


class ScoreRunForm(StyledForm):
    name = forms.CharField(max_length=200, required=False, help_text="Empty: named after the file.")
    file = forms.FileField(
        help_text="CSV or JSONL with an output column (the recorded answer) and the item's columns: input (JSON) or "
        "one column per variable, expected_output, context, metadata."
    )
    dataset = forms.ModelChoiceField(
        queryset=Dataset.objects.order_by("name"), required=False, empty_label="None",
        help_text="Optional: the dataset these outputs answer, so the run shows beside its runs.",
    )  # fmt: skip
    judge_model = JudgeChoiceField(
        queryset=LLMModel.objects.none(), required=False, label="Judge model", empty_label="None",
        help_text="Grades llm-rubric scorers.",
    )  # fmt: skip

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["judge_model"].queryset = _models_queryset()

    def clean_file(self):
        return _check_upload(self.cleaned_data["file"])


OPTION_PREFIX = "option-"
CONFIG_MODES = [("fields", "Fields"), ("json", "JSON (advanced)")]


def option_posted(data, key: str, option: scorers.ConfigField) -> object:
    """An option's value as a form posts it: a list for a choice list, presence for a checkbox, else text."""
    if option.kind == "string_list" and option.choices:
        return data.getlist(key) if hasattr(data, "getlist") else list(data.get(key) or [])
    if option.kind == "boolean":
        return key in data and data.get(key) not in ("", "false", "off", None)
    return data.get(key, "")


def option_text(option: scorers.ConfigField, value: object) -> object:
    """A config value as the option's field shows it (the inverse of `option_value`)."""
    if option.kind == "boolean":
        return bool(option.default) if value is None else bool(value)
    if value is None:
        value = option.default
    if option.kind == "string_list":
        items = list(value) if isinstance(value, list | tuple) else []
        return items if option.choices else "\n".join(str(item) for item in items)
    if option.kind == "object":
        return json.dumps(value, indent=2, ensure_ascii=False) if value is not None else ""
    return "" if value is None else str(value)


def option_value(option: scorers.ConfigField, raw: object) -> object:
    """The config value of an option's field; None when the field is empty (the default applies).

    Text that is not the option's type is handed on as it is: the services' check of the config
    (`scorers.check_config`) refuses it with the option's name, as it refuses it from the API.
    """
    kind = option.kind
    if kind == "boolean":
        return bool(raw)
    if kind == "string_list":
        if option.choices:
            return list(raw) or None
        lines = [line.strip() for line in str(raw).splitlines()]
        return [line for line in lines if line] or None
    text = str(raw)
    if not text.strip():
        return None
    if kind == "integer":
        try:
            return int(text.strip())
        except ValueError:
            return text
    if kind == "number":
        try:
            return float(text.strip())
        except ValueError:
            return text
    if kind == "object":
        return parse_json(text, option.name, kind=dict)
    return text


def options_config(info: scorers.ScorerInfo, values: dict) -> tuple[dict, dict[str, str]]:
    """The config built from option fields, and the fields that could not be read (invalid JSON)."""
    config, problems = {}, {}
    for option in info.config_fields:
        try:
            value = option_value(option, values.get(option.name, False if option.kind == "boolean" else ""))
        except forms.ValidationError as exc:
            problems[option.name] = " ".join(exc.messages)
            continue
        if value is not None:
            config[option.name] = value
    return config, problems


def config_options(info: scorers.ScorerInfo, config: object) -> dict:
    """Option field values from a config (JSON text or dict): what the fields show for it."""
    if isinstance(config, str):
        try:
            config = json.loads(config) if config.strip() else {}
        except json.JSONDecodeError:
            config = {}
    if not isinstance(config, dict):
        config = {}
    return {option.name: option_text(option, config.get(option.name)) for option in info.config_fields}


class ScorerForm(StyledForm):
    """One scorer of a run. Its options are either fields generated from the scorer's declared options
    (`ScorerInfo.config_fields`), or JSON; either way the form only builds the config and the services check it."""

    type = forms.ChoiceField(choices=())
    name = forms.CharField(max_length=100, required=False, help_text="Optional; shown instead of the type.")
    config = forms.CharField(required=False, widget=JSONTextarea(2), label="Config (JSON)")
    config_mode = forms.ChoiceField(choices=CONFIG_MODES, required=False, label="Options as")
    weight = forms.FloatField(min_value=0, initial=1.0)
    threshold = forms.FloatField(required=False, min_value=0, max_value=1, help_text="0 to 1; empty: the default.")
    negate = forms.BooleanField(required=False, label="not", help_text="Pass when the scorer fails.")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["type"].choices = [(name, f"{info.label} ({name})") for name, info in scorers.SCORERS.items()]
        self.fields["type"].widget.attrs["class"] += " scorer-type"
        self.option_errors: dict[str, list[str]] = {}

    @property
    def info(self) -> scorers.ScorerInfo | None:
        return scorers.SCORERS.get(str(self["type"].value() or "").removeprefix("not-"))

    @property
    def mode(self) -> str:
        """ "fields" or "json". A POST without a mode (a script, the API's shape) gives JSON."""
        if self.is_bound:
            return "fields" if self.data.get(self.add_prefix("config_mode")) == "fields" else "json"
        return self.initial.get("config_mode") or "fields"

    def option_values(self) -> dict:
        info = self.info
        if info is None:
            return {}
        if self.is_bound:
            return {
                o.name: option_posted(self.data, self.add_prefix(OPTION_PREFIX + o.name), o) for o in info.config_fields
            }
        if "options" in self.initial:
            posted = self.initial["options"]
            return {o.name: posted.get(o.name, option_text(o, None)) for o in info.config_fields}
        return config_options(info, self.initial.get("config") or "")

    def option_fields(self) -> list[dict]:
        """The option fields of the chosen scorer, ready for the template."""
        info = self.info
        if info is None:
            return []
        values = self.option_values()
        rows = []
        for option in info.config_fields:
            html_name = self.add_prefix(OPTION_PREFIX + option.name)
            rows.append({
                "option": option, "html_name": html_name, "id": f"id_{html_name}", "value": values.get(option.name),
                "choices": [str(choice) for choice in option.choices],
                "default": "" if option.default in (None, "", []) else option_text(option, option.default),
                "errors": self.option_errors.get(option.name, []),
            })  # fmt: skip
        return rows

    def add_option_error(self, name: str, message: str) -> bool:
        """Show an error on an option's field; False when the options are not shown as fields."""
        info = self.info
        if self.mode != "fields" or info is None or name not in {o.name for o in info.config_fields}:
            return False
        self.option_errors.setdefault(name, []).append(message)
        return True

    def is_valid(self) -> bool:
        return super().is_valid() and not self.option_errors

    def clean_config(self) -> dict:
        if self.mode == "fields":
            return {}
        return parse_json(self.cleaned_data["config"], "Config", empty={})

    def clean(self) -> dict:
        data = super().clean()
        info = self.info
        if self.mode == "fields" and info is not None:
            data["config"], problems = options_config(info, self.option_values())
            for name, message in problems.items():
                self.add_option_error(name, message)
        return data

    def spec(self) -> dict:
        """The scorer spec the services take."""
        data = self.cleaned_data
        spec = {"type": data["type"], "config": data["config"] or {}, "weight": data["weight"]}
        if data.get("name"):
            spec["name"] = data["name"].strip()
        if data.get("threshold") is not None:
            spec["threshold"] = data["threshold"]
        if data.get("negate"):
            spec["negate"] = True
        return spec

    @staticmethod
    def initial_for(spec: dict) -> dict:
        return {
            "type": str(spec.get("type", "")).removeprefix("not-"),
            "name": spec.get("name", ""),
            "config": json_text(spec.get("config")),
            "config_mode": "fields",
            "weight": spec.get("weight", 1.0),
            "threshold": spec.get("threshold"),
            "negate": bool(spec.get("negate")) or str(spec.get("type", "")).startswith("not-"),
        }


ScorerFormSet = forms.formset_factory(ScorerForm, extra=0, min_num=1, validate_min=True, max_num=30)


class RunFilterForm(StyledForm):
    q = forms.CharField(required=False, label="Search", widget=forms.TextInput(attrs={"type": "search"}))
    status = forms.ChoiceField(choices=[("", "Any status"), *EvalRun.Status.choices], required=False)
    dataset = forms.ModelChoiceField(queryset=Dataset.objects.order_by("name"), required=False, empty_label="Any")
