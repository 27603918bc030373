"""LLMOps: providers and their models (with prices), prompts with immutable versions and movable
labels (with a release gate), datasets, and evaluation runs with their per-cell results.

A run is a matrix: items (a snapshot of the dataset) x columns (prompt version x model, or
"imported outputs"). Each cell's result is stored exactly once (unique per run, item and
column), which is what lets a run resume after a worker dies.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone


class Provider(models.Model):
    """An OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp server, LiteLLM ...)."""

    name = models.CharField(max_length=100, unique=True)
    base_url = models.URLField(max_length=500, help_text="e.g. https://api.openai.com/v1 or http://vllm:8000/v1")
    api_key = models.TextField(blank=True, help_text="Encrypted at rest; never shown again.")
    default_headers = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.FloatField(default=60.0)
    max_concurrency = models.PositiveSmallIntegerField(default=8)
    max_retries = models.PositiveSmallIntegerField(default=4)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # The last "test connection": None until tested.
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_model = models.CharField(max_length=200, blank=True)
    last_test_message = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def is_local(self) -> bool:
        """An endpoint on this machine or the private network (vLLM, Ollama ...), which often needs no key."""
        host = (urlsplit(self.base_url).hostname or "").lower()
        if host in ("localhost", "") or host.endswith((".local", ".internal", ".localhost")) or "." not in host:
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return address.is_private or address.is_loopback

    @property
    def problem(self) -> str:
        """Why runs on this provider will likely error ("" when nothing is known against it).

        A failing last test wins; a missing key counts only for a remote endpoint that has not
        answered a test since, so a local endpoint without a key is never flagged.
        """
        if self.last_test_ok is False:
            return f"its last connection test failed: {self.last_test_message}"
        if not self.api_key and not self.is_local and self.last_test_ok is not True:
            return "it has no API key"
        return ""


@dataclass(frozen=True, slots=True)
class Prices:
    """USD per 1M tokens: input, output, and input read from / written to the prompt cache (None: as input).

    The token counts follow the OpenTelemetry GenAI and OpenInference conventions: the input count
    includes the cached tokens (read and written), the output count the reasoning tokens. So the input
    tokens priced at the input price are input - cache read - cache write, and each cache count is
    priced at its own price: a cached token is never charged twice. A sender that counts cached tokens
    apart from the input (Anthropic's own `usage` does) shows it by cache counts larger than the input
    count: then the whole input count is uncached.
    """

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    @classmethod
    def of(cls, row: object) -> Prices:
        """The prices of a PriceEntry or an LLMModel."""
        return cls.from_values(
            row.input_per_million, row.output_per_million, row.cache_read_per_million, row.cache_write_per_million
        )

    @classmethod
    def from_values(cls, price_in, price_out, cache_read=None, cache_write=None) -> Prices:
        return cls(
            float(price_in or 0), float(price_out or 0),
            None if cache_read is None else float(cache_read), None if cache_write is None else float(cache_write),
        )  # fmt: skip

    def cost(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float:
        """USD for the tokens (unrounded)."""
        read = max(cache_read_tokens or 0, 0)
        write = max(cache_write_tokens or 0, 0)
        total_in = input_tokens or 0
        uncached = total_in - read - write if read + write <= total_in else total_in
        usd = uncached * self.input + (output_tokens or 0) * self.output
        usd += read * (self.input if self.cache_read is None else self.cache_read)
        usd += write * (self.input if self.cache_write is None else self.cache_write)
        return usd / 1_000_000


def cache_price_field(what: str) -> models.DecimalField:
    """A prompt-cache price (USD per 1M tokens), empty when those tokens are priced as input tokens."""
    return models.DecimalField(
        max_digits=14, decimal_places=6, null=True, blank=True,
        help_text=f"USD per 1M input tokens {what} the prompt cache; empty: priced as input tokens.",
    )  # fmt: skip


class PriceEntry(models.Model):
    """The editable price table: USD per 1M tokens for well-known model names (exact, or a prefix ending in *)."""

    model_name = models.CharField(max_length=200, unique=True)
    input_per_million = models.DecimalField(max_digits=12, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=12, decimal_places=4)
    cache_read_per_million = cache_price_field("read from")
    cache_write_per_million = cache_price_field("written to")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["model_name"]
        verbose_name_plural = "price entries"

    def __str__(self) -> str:
        return self.model_name

    @property
    def prices(self) -> Prices:
        return Prices.of(self)


class LLMModel(models.Model):
    """A model offered by a provider, with its prices (USD per 1M input / output tokens)."""

    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200, help_text="The model id the provider expects, e.g. gpt-4o-mini.")
    input_per_million = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    output_per_million = models.DecimalField(max_digits=12, decimal_places=4, default=0)
    cache_read_per_million = cache_price_field("read from")
    cache_write_per_million = cache_price_field("written to")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["provider__name", "name"]
        constraints = [models.UniqueConstraint(fields=["provider", "name"], name="llmmodel_unique")]

    def __str__(self) -> str:
        return f"{self.provider.name}/{self.name}"

    @property
    def prices(self) -> Prices:
        return Prices.of(self)

    def cost(
        self,
        input_tokens: int | None,
        output_tokens: int | None,
        cache_read_tokens: int | None = None,
        cache_write_tokens: int | None = None,
    ) -> float:
        """USD for a call's tokens (`Prices.cost`)."""
        return self.prices.cost(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)


class Prompt(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    # Release gate: moving `production` needs a finished run of the version on this dataset at this pass rate.
    gate_dataset = models.ForeignKey(
        "Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="gated_prompts"
    )
    gate_min_pass_rate = models.FloatField(null=True, blank=True, help_text="0..1")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["-updated_at"], name="prompt_updated_idx")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("llmops:prompt", args=[self.name])

    @property
    def has_gate(self) -> bool:
        return self.gate_dataset_id is not None and self.gate_min_pass_rate is not None


class PromptVersion(models.Model):
    """Immutable once created: chat messages with {{variable}} placeholders and model parameters."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    messages = models.JSONField(help_text='[{"role": "system|user|assistant", "content": "... {{var}} ..."}]')
    model = models.CharField(max_length=200, blank=True, help_text="Default model name.")
    parameters = models.JSONField(default=dict, blank=True, help_text="temperature, max_tokens, response_format ...")
    variables = models.JSONField(default=list, blank=True)
    commit_message = models.CharField(max_length=500, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["prompt_id", "-version"]
        constraints = [models.UniqueConstraint(fields=["prompt", "version"], name="promptversion_unique")]

    def __str__(self) -> str:
        return f"{self.prompt.name} v{self.version}"

    def get_absolute_url(self) -> str:
        return reverse("llmops:prompt-version", args=[self.prompt.name, self.version])


class PromptLabel(models.Model):
    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    version = models.ForeignKey(PromptVersion, on_delete=models.CASCADE, related_name="labels")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["prompt", "name"], name="promptlabel_unique")]

    def __str__(self) -> str:
        return f"{self.prompt.name}@{self.name}"


class LabelMove(models.Model):
    """History of label moves (also in the audit log), including gate overrides."""

    prompt = models.ForeignKey(Prompt, on_delete=models.CASCADE, related_name="label_moves")
    label = models.CharField(max_length=100)
    from_version = models.PositiveIntegerField(null=True, blank=True)
    to_version = models.PositiveIntegerField(null=True, blank=True, help_text="Empty when the label was removed.")
    gate_overridden = models.BooleanField(default=False)
    reason = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")  # fmt: skip
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["prompt", "-at"], name="labelmove_prompt_idx")]

    def __str__(self) -> str:
        return f"{self.prompt.name}@{self.label} -> {self.to_version}"


class Dataset(models.Model):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("llmops:dataset", args=[self.pk])


class DatasetItem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    input = models.JSONField(default=dict, help_text="Variables for the prompt's placeholders.")
    expected_output = models.TextField(blank=True)
    context = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    tags = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dataset_id", "id"]
        indexes = [models.Index(fields=["dataset", "id"], name="datasetitem_dataset_idx")]

    def __str__(self) -> str:
        return f"item {self.pk} of {self.dataset_id}"


class EvalRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Kind(models.TextChoices):
        GENERATE = "generate", "Generate and score"
        SCORE = "score", "Score imported outputs"

    name = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.GENERATE)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    scorers = models.JSONField(default=list, help_text="Scorer specs: type, config, weight, threshold, not.")
    judge_model = models.ForeignKey(
        LLMModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="For llm-rubric scorers.",
    )  # fmt: skip
    concurrency = models.PositiveSmallIntegerField(null=True, blank=True, help_text="Default: each provider's limit.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    cost = models.FloatField(default=0.0)
    summary = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Lease of the worker executing the run; a stale lease means the worker died and the run is resumed.
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="evalrun_status_idx"),
            models.Index(fields=["dataset", "-created_at"], name="evalrun_dataset_idx"),
        ]

    def __str__(self) -> str:
        return self.name or f"Run #{self.pk}"

    def get_absolute_url(self) -> str:
        return reverse("llmops:run", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED, self.Status.CANCELLED)

    @property
    def progress(self) -> float:
        return self.done / self.total if self.total else (1.0 if self.finished else 0.0)

    @property
    def pass_rate(self) -> float | None:
        scored = self.done - self.errors
        return self.passed / scored if scored > 0 else None

    @property
    def failed_results(self) -> int:
        """Results scored as failed (errors are not among them)."""
        return max(0, self.done - self.errors - self.passed)

    @property
    def state(self) -> tuple[str, str]:
        """(label, Bootstrap colour) of the run's badge: its status, and what its results amount to.

        A finished run with errors says so ("Completed with 12 errors"); one without a single scored
        result is never green. The API's `status` keeps the five status values.
        """
        errors = self.errors
        noun = f"{errors} error{'s' if errors != 1 else ''}"
        scored = self.done - errors
        if self.status == self.Status.QUEUED:
            return "Queued", "secondary"
        if self.status == self.Status.RUNNING:
            return (f"Running, {noun} so far", "warning") if errors else ("Running", "primary")
        if self.status == self.Status.FAILED:
            return (f"Failed, {noun}" if errors else "Failed"), "danger"
        if self.status == self.Status.CANCELLED:
            return (f"Cancelled, {noun}" if errors else "Cancelled"), "secondary"
        if errors and scored <= 0:
            return f"Completed with {noun}: nothing scored", "danger"
        if errors:
            return f"Completed with {noun}", "warning"
        if scored <= 0:
            return "Completed: nothing scored", "secondary"
        return "Completed", "success"

    @property
    def state_label(self) -> str:
        return self.state[0]

    @property
    def state_badge(self) -> str:
        """The badge's classes; warning badges take dark text to stay readable."""
        tone = self.state[1]
        return f"text-bg-{tone}"

    @property
    def bar_segments(self) -> list[dict]:
        """The progress bar's parts: passed, failed and errored results, each a share of the total."""
        total = self.total or 0
        parts = [
            ("passed", "passed", self.passed, "bg-success"),
            ("failed", "failed", self.failed_results, "bg-danger"),
            ("errored", "errored", self.errors, "bg-warning"),
        ]
        return [
            {"kind": kind, "label": label, "count": count, "css": css, "percent": round(100 * count / total, 2)}
            for kind, label, count, css in parts
            if count and total
        ]


class RunColumn(models.Model):
    """One column of the run's matrix: a prompt version with a model, or the imported outputs."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="columns")
    position = models.PositiveSmallIntegerField()
    prompt_version = models.ForeignKey(
        PromptVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="run_columns"
    )
    model = models.ForeignKey(LLMModel, null=True, blank=True, on_delete=models.SET_NULL, related_name="run_columns")
    label = models.CharField(max_length=300)
    # Filled when the run finishes: pass rate and mean score per scorer for this column.
    pass_rate = models.FloatField(null=True, blank=True)
    stats = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["run_id", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="runcolumn_unique")]

    def __str__(self) -> str:
        return self.label


class RunItem(models.Model):
    """The snapshot of a dataset item as the run used it (the dataset may change later)."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    source_item = models.ForeignKey(DatasetItem, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    input = models.JSONField(default=dict)
    expected_output = models.TextField(blank=True)
    context = models.TextField(blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    imported_output = models.TextField(null=True, blank=True)

    class Meta:
        ordering = ["run_id", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "position"], name="runitem_unique")]

    def __str__(self) -> str:
        return f"run {self.run_id} item {self.position}"


class RunResult(models.Model):
    """One cell of the matrix, stored exactly once."""

    run = models.ForeignKey(EvalRun, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(RunItem, on_delete=models.CASCADE, related_name="results")
    column = models.ForeignKey(RunColumn, on_delete=models.CASCADE, related_name="results")
    rendered_messages = models.JSONField(default=list, blank=True)
    output = models.TextField(blank=True)
    finish_reason = models.CharField(max_length=50, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    input_tokens = models.PositiveIntegerField(null=True, blank=True)
    output_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost = models.FloatField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    passed = models.BooleanField(null=True)
    score = models.FloatField(null=True, blank=True)
    scores = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["run_id", "item_id", "column_id"]
        constraints = [models.UniqueConstraint(fields=["run", "item", "column"], name="runresult_once")]
        indexes = [
            models.Index(fields=["column", "item"], name="runresult_column_idx"),
            models.Index(fields=["run"], condition=Q(error__gt=""), name="runresult_errors_idx"),
        ]

    def __str__(self) -> str:
        return f"result {self.pk}"
