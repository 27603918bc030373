"""Serializers of the monitoring data API: monitors, their references, batches and their reports."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from ..models import Monitor, MonitoringBatch, ReferenceDataset, Stage, TaskType


class ReferenceSerializer(serializers.ModelSerializer):
    """A reference dataset: where it came from, its size, rows and the model's performance on it."""

    version = serializers.IntegerField(source="version.version", allow_null=True, read_only=True)

    class Meta:
        model = ReferenceDataset
        fields = ["id", "name", "source", "version", "size", "sha256", "rows", "performance", "created_at"]
        read_only_fields = fields


class MonitorSerializer(serializers.ModelSerializer):
    """A monitor as the API answers it: its settings, the version it follows now, its reference and schema."""

    model = serializers.CharField(source="model.name", read_only=True)
    follows = serializers.CharField(read_only=True)
    current_version = serializers.SerializerMethodField()
    reference = ReferenceSerializer(read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = Monitor
        fields = [
            "id", "model", "name", "description", "follows", "follow_alias", "follow_stage", "current_version",
            "task", "id_column", "timestamp_column", "prediction_column", "target_column", "score_column",
            "batch_minutes", "window_hours", "schedule_minutes", "enabled", "options", "schema", "reference",
            "batched_until", "last_evaluated_at", "created_at", "updated_at", "url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_current_version(self, monitor: Monitor) -> int | None:
        known = self.context.get("current_versions")
        if known is not None and monitor.pk in known:
            return known[monitor.pk]
        version = monitor.current_version()
        return version.version if version else None

    def get_url(self, monitor: Monitor) -> str:
        return settings.OPSPORTAL_BASE_URL + monitor.get_absolute_url()


class MonitorWriteSerializer(serializers.Serializer):
    """The fields a monitor is created or changed with; the service checks them (InvalidValue names the field)."""

    model = serializers.CharField(help_text="The registered model's name (create only).")
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    follow_alias = serializers.CharField(required=False, allow_blank=True, help_text="Wins over follow_stage.")
    follow_stage = serializers.ChoiceField(choices=Stage.choices, required=False)
    task = serializers.ChoiceField(choices=TaskType.choices, required=False)
    id_column = serializers.CharField(required=False)
    timestamp_column = serializers.CharField(required=False)
    prediction_column = serializers.CharField(required=False)
    target_column = serializers.CharField(required=False)
    score_column = serializers.CharField(required=False, allow_blank=True)
    batch_minutes = serializers.IntegerField(required=False)
    window_hours = serializers.IntegerField(required=False)
    schedule_minutes = serializers.IntegerField(required=False)
    enabled = serializers.BooleanField(required=False)
    options = serializers.JSONField(
        required=False,
        help_text='Drift settings: {"method", "threshold", "drift_share", "columns": {col: {"method", "threshold"}}}.',
    )


class SchemaSerializer(serializers.Serializer):
    types = serializers.DictField(
        child=serializers.CharField(), help_text='Column types to set, e.g. {"zip": "categorical"}.'
    )


class ReferenceUploadSerializer(serializers.Serializer):
    file = serializers.FileField(required=False, help_text="CSV or Parquet, up to MLOPS_REFERENCE_MAX_BYTES.")
    artifact = serializers.IntegerField(required=False, help_text="Or: the id of a dataset artifact of a version.")
    version = serializers.IntegerField(required=False, help_text="The version the data describes.")


class BatchSerializer(serializers.ModelSerializer):
    """A batch in lists: what it covers and its verdicts (the full report is on the batch itself)."""

    monitor = serializers.IntegerField(source="monitor_id", read_only=True)
    version = serializers.IntegerField(source="version.version", allow_null=True, read_only=True)
    reference = serializers.IntegerField(source="reference_id", allow_null=True, read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = MonitoringBatch
        fields = [
            "id", "monitor", "version", "reference", "source", "name", "rows", "start", "end", "received_at",
            "dataset_drift", "drift_share", "drifted_columns", "performance", "labelled_rows", "evaluated_at", "url",
        ]  # fmt: skip
        read_only_fields = fields

    def get_url(self, batch: MonitoringBatch) -> str:
        return settings.OPSPORTAL_BASE_URL + batch.get_absolute_url()


class BatchDetailSerializer(BatchSerializer):
    """A batch with its report: drift per column (the `drift_report` document), data quality, performance and
    the reference's performance to compare with."""

    reference_performance = serializers.JSONField(source="reference.performance", allow_null=True, read_only=True)

    class Meta(BatchSerializer.Meta):
        fields = [*BatchSerializer.Meta.fields, "drift", "quality", "reference_performance"]
        read_only_fields = fields


class RowsSerializer(serializers.Serializer):
    rows = serializers.ListField(child=serializers.DictField(), help_text="The batch's rows: column: value.")
    name = serializers.CharField(required=False, allow_blank=True)


class PredictionRowSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="Unique per model: a retry with the same id stores nothing twice.")
    timestamp = serializers.CharField(required=False, help_text="ISO 8601 or Unix seconds; default: arrival.")
    features = serializers.DictField(help_text="feature: value (string, number, boolean or null).")
    prediction = serializers.JSONField()
    label = serializers.JSONField(required=False, help_text="The ground truth, when already known.")
    version = serializers.IntegerField(required=False, help_text="Default: the version the monitor follows.")


class PredictionsSerializer(serializers.Serializer):
    rows = PredictionRowSerializer(many=True)


class PredictionsAnswerSerializer(serializers.Serializer):
    accepted = serializers.IntegerField(help_text="Rows stored.")
    duplicates = serializers.IntegerField(help_text="Rows whose id was stored before (retries): not stored again.")
    version = serializers.IntegerField(allow_null=True, help_text="The version rows without `version` went to.")
    late = serializers.IntegerField(help_text="Rows for windows already cut: their batches are made again.")


class LabelSerializer(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.JSONField()


class LabelsSerializer(serializers.Serializer):
    labels = LabelSerializer(many=True)


class LabelsAnswerSerializer(serializers.Serializer):
    labelled = serializers.IntegerField(help_text="Logged predictions that got their label.")
    unknown = serializers.ListField(child=serializers.CharField(), help_text="Ids with no logged prediction.")
    batches = serializers.ListField(child=serializers.IntegerField(), help_text="Batches whose performance changed.")
