from __future__ import annotations

from urllib.parse import urlparse

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from opsportal.api import ErrorSerializer

from ..models import (
    Dataset,
    DatasetItem,
    EvalRun,
    LabelMove,
    LLMModel,
    PriceEntry,
    Prompt,
    PromptLabel,
    PromptVersion,
    Provider,
    RunColumn,
    RunResult,
)
from ..services import LABEL_RE
from ..services.base import NAME_RE

MAX_UPLOAD_BYTES = 20 * 1024 * 1024  # as the import page
PRICE = {"max_digits": 12, "decimal_places": 4, "min_value": 0, "coerce_to_string": False}
# Prompt-cache prices: null means cached input tokens are priced as input tokens.
CACHE_PRICE = {"max_digits": 14, "decimal_places": 6, "min_value": 0, "coerce_to_string": False, "allow_null": True,
               "required": False}  # fmt: skip
CACHE_READ_HELP = "USD per 1M input tokens read from the prompt cache (part of the input count); null: as input."
CACHE_WRITE_HELP = "USD per 1M input tokens written to the prompt cache (part of the input count); null: as input."


def cache_price_fields() -> dict[str, serializers.DecimalField]:
    return {
        "cache_read_per_million": serializers.DecimalField(help_text=CACHE_READ_HELP, **CACHE_PRICE),
        "cache_write_per_million": serializers.DecimalField(help_text=CACHE_WRITE_HELP, **CACHE_PRICE),
    }


# --- Providers, models, prices --------------------------------------------------------------------------------------


class LastTestSerializer(serializers.Serializer):
    """The provider's last "test connection" (from the API or the provider pages)."""

    ok = serializers.BooleanField(source="last_test_ok")
    at = serializers.DateTimeField(source="last_test_at")
    model = serializers.CharField(source="last_test_model", help_text="The model id that was asked.")
    message = serializers.CharField(
        source="last_test_message", help_text="The model's answer and latency when ok, else the exact error."
    )


class ProviderSerializer(serializers.ModelSerializer):
    api_key = serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=True,
        help_text='Write-only, stored encrypted. On update: omit to keep it, "" to remove it.',
    )  # fmt: skip
    has_api_key = serializers.BooleanField(read_only=True)
    # Not a URLField: service names without a dot (http://vllm:8000/v1) are fine here.
    base_url = serializers.CharField(max_length=500, help_text="e.g. https://api.openai.com/v1 or http://vllm:8000/v1")
    models = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    last_test = serializers.SerializerMethodField(help_text="The last connection test; null until one was made.")

    class Meta:
        model = Provider
        fields = [
            "id", "name", "base_url", "api_key", "has_api_key", "default_headers", "timeout_seconds",
            "max_concurrency", "max_retries", "enabled", "models", "last_test", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["id", "has_api_key", "models", "last_test", "created_at", "updated_at"]
        extra_kwargs = {
            "name": {"validators": []},  # the service names the duplicate
            "max_concurrency": {"min_value": 1, "max_value": 256},
            "max_retries": {"max_value": 20},
            "timeout_seconds": {"min_value": 0.1, "max_value": 3600},
        }

    @extend_schema_field(LastTestSerializer(allow_null=True))
    def get_last_test(self, provider: Provider) -> dict | None:
        return None if provider.last_test_ok is None else LastTestSerializer(provider).data

    def validate_base_url(self, value: str) -> str:
        parsed = urlparse(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise serializers.ValidationError("an http:// or https:// URL, e.g. https://api.openai.com/v1")
        return value.strip()


class TestConnectionSerializer(serializers.Serializer):
    model = serializers.CharField(max_length=200, help_text="The model id to ask, e.g. gpt-4o-mini.")


class TestConnectionResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    answer = serializers.CharField(required=False, help_text="The model's answer and the time it took (when ok).")
    error = serializers.CharField(required=False, help_text="The exact error (when not ok).")


class LLMModelSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="name", queryset=Provider.objects.all())
    reference = serializers.SerializerMethodField(help_text="provider/name, as runs and run_eval accept it.")
    input_per_million = serializers.DecimalField(required=False, help_text="USD per 1M input tokens.", **PRICE)
    output_per_million = serializers.DecimalField(required=False, help_text="USD per 1M output tokens.", **PRICE)
    cache_read_per_million = cache_price_fields()["cache_read_per_million"]
    cache_write_per_million = cache_price_fields()["cache_write_per_million"]

    class Meta:
        model = LLMModel
        fields = ["id", "provider", "name", "reference", "input_per_million", "output_per_million",
                  "cache_read_per_million", "cache_write_per_million", "created_at"]  # fmt: skip
        read_only_fields = ["id", "reference", "created_at"]
        validators = []  # the service names the duplicate

    def get_reference(self, model: LLMModel) -> str:
        return f"{model.provider.name}/{model.name}"


class ModelPricesSerializer(serializers.Serializer):
    input_per_million = serializers.DecimalField(required=False, **PRICE)
    output_per_million = serializers.DecimalField(required=False, **PRICE)
    cache_read_per_million = cache_price_fields()["cache_read_per_million"]
    cache_write_per_million = cache_price_fields()["cache_write_per_million"]


class PriceEntrySerializer(serializers.ModelSerializer):
    input_per_million = serializers.DecimalField(**PRICE)
    output_per_million = serializers.DecimalField(**PRICE)
    cache_read_per_million = cache_price_fields()["cache_read_per_million"]
    cache_write_per_million = cache_price_fields()["cache_write_per_million"]

    class Meta:
        model = PriceEntry
        fields = ["id", "model_name", "input_per_million", "output_per_million", "cache_read_per_million",
                  "cache_write_per_million", "updated_at"]  # fmt: skip
        read_only_fields = ["id", "updated_at"]
        extra_kwargs = {
            "model_name": {"validators": [], "help_text": "An exact model name, or a prefix ending in * (gpt-4o*)."}
        }


# --- Prompts --------------------------------------------------------------------------------------------------------


class MessageSerializer(serializers.Serializer):
    # Not a ChoiceField: its enum would collide with the accounts' `role` in the schema; the service checks it.
    role = serializers.CharField(help_text="system, user or assistant")
    content = serializers.CharField(trim_whitespace=False, help_text="Text with {{ variable }} placeholders.")


class PromptSerializer(serializers.ModelSerializer):
    gate_dataset = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    labels = serializers.SerializerMethodField(help_text="label -> version number")
    latest_version = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = Prompt
        fields = [
            "id", "name", "description", "labels", "latest_version", "gate_dataset", "gate_min_pass_rate",
            "created_by", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_labels(self, prompt: Prompt) -> dict[str, int]:
        return {label.name: label.version.version for label in prompt.labels.all()}

    def get_latest_version(self, prompt: Prompt) -> int | None:
        numbers = [version.version for version in prompt.versions.all()]
        return max(numbers) if numbers else None


# The names the services accept (llmops.services), stated in the OpenAPI document as patterns.
NAME = RegexValidator(NAME_RE.pattern, "Start with a letter or digit; then letters, digits, '_', '.', '-', '/'.")
LABEL = RegexValidator(LABEL_RE.pattern, "Lower-case letters, digits, '_', '.', '-', starting with a letter or digit.")


class PromptCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, validators=[NAME])
    description = serializers.CharField(required=False, allow_blank=True, default="")
    messages = MessageSerializer(many=True, required=False, help_text="The first version's messages (optional).")
    model = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    parameters = serializers.DictField(required=False, default=dict)
    commit_message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class PromptUpdateSerializer(serializers.Serializer):
    """The description and the release gate: moving `production` needs a finished run of the version on
    `gate_dataset` (a dataset name) with a pass rate of at least `gate_min_pass_rate`. Both null: no gate."""

    description = serializers.CharField(required=False, allow_blank=True)
    gate_dataset = serializers.CharField(required=False, allow_null=True, help_text="A dataset name, or null.")
    gate_min_pass_rate = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)


class ResolvedPromptSerializer(serializers.Serializer):
    """What an application needs to call the model: the version a label points at."""

    name = serializers.CharField()
    label = serializers.CharField(allow_null=True, help_text="The label asked for (null when a version was asked).")
    version = serializers.IntegerField()
    messages = MessageSerializer(many=True)
    model = serializers.CharField()
    parameters = serializers.DictField()
    variables = serializers.ListField(child=serializers.CharField())
    commit_message = serializers.CharField()
    created_at = serializers.DateTimeField()


class PromptVersionSerializer(serializers.ModelSerializer):
    prompt = serializers.CharField(source="prompt.name", read_only=True)
    author = serializers.CharField(source="author.username", read_only=True, default=None)
    labels = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)

    class Meta:
        model = PromptVersion
        fields = [
            "id", "prompt", "version", "messages", "model", "parameters", "variables", "commit_message", "labels",
            "author", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class PromptVersionCreateSerializer(serializers.Serializer):
    messages = MessageSerializer(many=True)
    model = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    parameters = serializers.DictField(required=False, default=dict)
    commit_message = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class VersionDiffSerializer(serializers.Serializer):
    prompt = serializers.CharField()
    version = serializers.IntegerField()
    against = serializers.IntegerField()
    changed = serializers.BooleanField()
    messages_diff = serializers.CharField(help_text="A unified diff of the messages (role: content), old -> new.")
    model = serializers.ListField(child=serializers.CharField(), help_text="[old, new] when changed, else empty.")
    parameters = serializers.DictField(
        child=serializers.ListField(), help_text="parameter -> [old, new] for each changed parameter."
    )
    variables_added = serializers.ListField(child=serializers.CharField())
    variables_removed = serializers.ListField(child=serializers.CharField())


class GateCheckSerializer(serializers.Serializer):
    allowed = serializers.BooleanField()
    reason = serializers.CharField()
    run = serializers.IntegerField(allow_null=True, help_text="The best finished run on the gate dataset.")


class PromptLabelSerializer(serializers.ModelSerializer):
    label = serializers.CharField(source="name")
    version = serializers.IntegerField(source="version.version")

    class Meta:
        model = PromptLabel
        fields = ["label", "version", "updated_at"]
        read_only_fields = fields


class MoveLabelSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, validators=[LABEL])
    version = serializers.IntegerField(min_value=1)
    override = serializers.BooleanField(
        default=False, help_text="Admins only: move `production` although the release gate refuses (needs reason)."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class LabelMoveSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", read_only=True, default=None)

    class Meta:
        model = LabelMove
        fields = ["id", "label", "from_version", "to_version", "gate_overridden", "reason", "actor", "at"]
        read_only_fields = fields


# --- Datasets -------------------------------------------------------------------------------------------------------


class DatasetSerializer(serializers.ModelSerializer):
    item_count = serializers.IntegerField(read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)

    class Meta:
        model = Dataset
        fields = ["id", "name", "description", "item_count", "created_by", "created_at", "updated_at"]
        read_only_fields = ["id", "item_count", "created_by", "created_at", "updated_at"]
        extra_kwargs = {"name": {"validators": []}, "description": {"required": False}}


class DatasetItemSerializer(serializers.ModelSerializer):
    input = serializers.DictField(help_text="Variables for the prompt's placeholders.")
    metadata = serializers.DictField(required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=200), required=False)

    class Meta:
        model = DatasetItem
        fields = ["id", "input", "expected_output", "context", "metadata", "tags", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"expected_output": {"trim_whitespace": False}, "context": {"trim_whitespace": False}}


def _small_file(upload):
    if upload.size > MAX_UPLOAD_BYTES:
        raise serializers.ValidationError(
            f"the file is {upload.size / 1e6:.1f} MB; at most {MAX_UPLOAD_BYTES // 10**6} MB"
        )
    return upload


class ImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV (header row) or JSONL (one object per line), up to 20 MB.")
    preview = serializers.BooleanField(default=False, help_text="Only validate; nothing is stored.")

    def validate_file(self, upload):
        return _small_file(upload)


class ImportRowErrorSerializer(serializers.Serializer):
    row = serializers.IntegerField(help_text="1-based, as an editor counts lines (CSV: the header is row 1).")
    message = serializers.CharField()


class ImportResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    preview = serializers.BooleanField()
    format = serializers.CharField()
    count = serializers.IntegerField(help_text="Rows read without error.")
    imported = serializers.IntegerField(help_text="Items stored (0 for a preview or a bad file).")
    rows = serializers.ListField(child=serializers.DictField(), help_text="The first rows as they would be stored.")
    errors = ImportRowErrorSerializer(many=True)


class BadFileSerializer(serializers.Serializer):
    """A file that was read and refused whole (nothing stored): each bad row in `errors`."""

    detail = serializers.CharField(help_text="The first bad row, e.g. 'Row 3: ...; nothing was stored.'")
    code = serializers.CharField(help_text="invalid_file")
    errors = ImportRowErrorSerializer(many=True)


class BadImportSerializer(BadFileSerializer, ImportResultSerializer):
    """An import's bad file: the result (nothing imported) with `detail` and `code` invalid_file."""


def file_error_response(bad_file: type[serializers.Serializer], name: str) -> OpenApiResponse:
    """The 400 of an upload: a bad request (the API's error, each field named) or a bad file (each row named)."""
    return OpenApiResponse(
        PolymorphicProxySerializer(
            component_name=name, serializers=[ErrorSerializer, bad_file], resource_type_field_name=None
        ),
        description="A bad request (`errors` names each field: a missing or too large `file` ...), or a file "
        "that was read and refused (`code` invalid_file, `errors` names each bad row); nothing is stored.",
    )


# --- Runs -----------------------------------------------------------------------------------------------------------


class PromptVersionReferenceField(serializers.JSONField):
    """ "name@3", "name@staging", {"prompt": name, "version": 3} or {"prompt": name, "label": "staging"}."""


class RunCreateSerializer(serializers.Serializer):
    dataset = serializers.CharField(help_text="Dataset name or id.")
    prompt_versions = serializers.ListField(
        child=PromptVersionReferenceField(), min_length=1, max_length=50,
        help_text='"name@3", "name@staging", {"prompt": name, "version": 3} or {"prompt": name, "label": "staging"}',
    )  # fmt: skip
    models = serializers.ListField(
        child=serializers.CharField(), required=False, max_length=50,
        help_text='"provider/model" or "model". Default: the prompt versions\' own model.',
    )  # fmt: skip
    scorers = serializers.ListField(
        child=serializers.DictField(), min_length=1,
        help_text='[{"type": "icontains", "config": {"value": "Paris"}, "weight": 1, "threshold": null}]',
    )  # fmt: skip
    judge_model = serializers.CharField(required=False, allow_null=True, help_text="For llm-rubric scorers.")
    concurrency = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=256, help_text="Default: each provider's limit."
    )
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)


class ScoreRunCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="CSV or JSONL with an `output` per row (and input, expected_output ...).")
    scorers = serializers.JSONField(help_text="A JSON list of scorer objects (a JSON string in a multipart form).")
    name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    dataset = serializers.CharField(required=False, allow_blank=True, default="", help_text="Dataset name or id.")
    judge_model = serializers.CharField(required=False, allow_blank=True, default="")
    prompt_version = serializers.CharField(
        required=False, allow_blank=True, default="",
        help_text='The version that produced the outputs ("name@3" or "name@label"): the run then counts for its '
        "comparisons and release gate.",
    )  # fmt: skip

    def validate_file(self, upload):
        return _small_file(upload)


class RescoreSerializer(serializers.Serializer):
    scorers = serializers.ListField(
        child=serializers.DictField(), required=False, min_length=1, help_text="New scorers; default: the run's own."
    )


class RunColumnSerializer(serializers.ModelSerializer):
    prompt = serializers.CharField(source="prompt_version.prompt.name", read_only=True, default=None)
    version = serializers.IntegerField(source="prompt_version.version", read_only=True, default=None)
    model = serializers.SerializerMethodField()

    class Meta:
        model = RunColumn
        fields = ["id", "position", "label", "prompt", "version", "model", "pass_rate", "stats"]
        read_only_fields = fields

    def get_model(self, column: RunColumn) -> str | None:
        return f"{column.model.provider.name}/{column.model.name}" if column.model else None


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()
    fraction = serializers.FloatField()


class EvalRunSerializer(serializers.ModelSerializer):
    dataset = serializers.CharField(source="dataset.name", read_only=True, default=None)
    judge_model = serializers.SerializerMethodField()
    progress = serializers.SerializerMethodField()
    pass_rate = serializers.FloatField(read_only=True, allow_null=True, help_text="Passed / results without error.")
    columns = RunColumnSerializer(many=True, read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True, default=None)
    web_url = serializers.CharField(source="get_absolute_url", read_only=True)

    class Meta:
        model = EvalRun
        fields = [
            "id", "name", "kind", "status", "dataset", "scorers", "judge_model", "concurrency", "progress", "total",
            "done", "errors", "passed", "pass_rate", "cost", "error", "cancel_requested", "columns", "summary",
            "created_by", "created_at", "started_at", "finished_at", "web_url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_judge_model(self, run: EvalRun) -> str | None:
        judge = run.judge_model
        return f"{judge.provider.name}/{judge.name}" if judge else None

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, run: EvalRun) -> dict:
        return {"done": run.done, "total": run.total, "fraction": round(run.progress, 4)}


class RunItemSummarySerializer(serializers.Serializer):
    position = serializers.IntegerField()
    input = serializers.DictField()
    expected_output = serializers.CharField()


class RunResultSerializer(serializers.ModelSerializer):
    item = RunItemSummarySerializer(read_only=True)
    column_label = serializers.CharField(source="column.label", read_only=True)

    class Meta:
        model = RunResult
        fields = [
            "id", "item", "column", "column_label", "rendered_messages", "output", "finish_reason", "latency_ms",
            "input_tokens", "output_tokens", "cost", "attempts", "error", "passed", "score", "scores", "created_at",
        ]  # fmt: skip
        read_only_fields = fields
