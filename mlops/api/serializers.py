from __future__ import annotations

from django.core.validators import RegexValidator
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import (
    ApprovalRequest,
    Artifact,
    ModelVersion,
    RegisteredModel,
    Stage,
    VersionEvent,
    Webhook,
    WebhookDelivery,
)
from ..services import ALIAS_RE, NAME_RE, TAG_KEY_MAX

# The registry's own rules (mlops.services.validation), stated in the OpenAPI document as patterns, with the
# services' own words.
ALIAS = RegexValidator(ALIAS_RE.pattern, "Letters, digits, '_', '-' and '.' only (at most 255).")


def model_name_field(parameter: str = "name", **kwargs) -> serializers.CharField:
    message = f"Invalid value %(value)r for parameter '{parameter}': at most 256 characters, no '/' or control "
    message += "characters."
    return serializers.CharField(max_length=256, validators=[RegexValidator(NAME_RE.pattern, message)], **kwargs)


def alias_field(**kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=255, validators=[ALIAS], **kwargs)


class TagsField(serializers.DictField):
    """Tags as a {key: value} object."""

    child = serializers.CharField(allow_blank=True, max_length=5000)


def _tags(obj) -> dict[str, str]:
    return {tag.key: tag.value for tag in obj.tags.all()}


class RegisteredModelSerializer(serializers.ModelSerializer):
    tags = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField(help_text="alias -> version number")
    latest_versions = serializers.SerializerMethodField(help_text="The newest version in each stage.")
    version_count = serializers.SerializerMethodField()
    web_url = serializers.SerializerMethodField()

    class Meta:
        model = RegisteredModel
        fields = [
            "name", "description", "owner_team", "approval_required", "protected_aliases", "archive_on_promotion",
            "tags", "aliases", "latest_versions", "version_count", "created_at", "updated_at", "web_url",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(TagsField)
    def get_tags(self, model: RegisteredModel) -> dict[str, str]:
        return _tags(model)

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_aliases(self, model: RegisteredModel) -> dict[str, int]:
        return {row.alias: row.version.version for row in model.aliases.all()}

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_latest_versions(self, model: RegisteredModel) -> list[dict]:
        newest: dict[str, int] = {}
        for version in model.versions.all():
            newest[version.stage] = max(newest.get(version.stage, 0), version.version)
        return [{"stage": stage, "version": number} for stage, number in sorted(newest.items(), key=lambda i: i[1])]

    def get_version_count(self, model: RegisteredModel) -> int:
        return len(model.versions.all())

    def get_web_url(self, model: RegisteredModel) -> str:
        return model.get_absolute_url()


class RegisteredModelWriteSerializer(serializers.Serializer):
    name = model_name_field()
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owner_team = serializers.CharField(required=False, allow_blank=True, max_length=100, default="")
    tags = TagsField(required=False, default=dict)
    approval_required = serializers.BooleanField(required=False, default=False)
    protected_aliases = serializers.ListField(child=alias_field(), required=False, default=list)
    archive_on_promotion = serializers.BooleanField(required=False, default=True)


class RegisteredModelUpdateSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_blank=True)
    owner_team = serializers.CharField(required=False, allow_blank=True, max_length=100)
    approval_required = serializers.BooleanField(required=False)
    protected_aliases = serializers.ListField(child=alias_field(), required=False)
    archive_on_promotion = serializers.BooleanField(required=False)


class RenameSerializer(serializers.Serializer):
    new_name = model_name_field("new_name")


class TagSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=TAG_KEY_MAX)
    value = serializers.CharField(max_length=5000, allow_blank=True)


class AliasSerializer(serializers.Serializer):
    alias = alias_field()
    version = serializers.IntegerField(min_value=1)


class ArtifactSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Artifact
        fields = ["id", "path", "size", "sha256", "content_type", "uploaded_at", "download_url"]
        read_only_fields = fields

    def get_download_url(self, artifact: Artifact) -> str:
        return reverse("api:mlops:artifact-download", args=[artifact.pk])


class ArtifactUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    path = serializers.CharField(required=False, allow_blank=True, max_length=500)


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    tags = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField()
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    web_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "model", "version", "source", "run_id", "run_link", "description", "status", "status_message", "stage",
            "framework", "params", "metrics", "dataset", "code_version", "model_card", "tags", "aliases",
            "created_by", "created_at", "updated_at", "web_url",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(TagsField)
    def get_tags(self, version: ModelVersion) -> dict[str, str]:
        return _tags(version)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_aliases(self, version: ModelVersion) -> list[str]:
        return sorted(row.alias for row in version.aliases.all())

    def get_web_url(self, version: ModelVersion) -> str:
        return version.get_absolute_url()


class ModelVersionDetailSerializer(ModelVersionSerializer):
    artifacts = ArtifactSerializer(many=True, read_only=True)

    class Meta(ModelVersionSerializer.Meta):
        fields = [*ModelVersionSerializer.Meta.fields, "artifacts"]
        read_only_fields = fields


class ModelVersionWriteSerializer(serializers.Serializer):
    source = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
    run_id = serializers.CharField(max_length=64, allow_blank=True, required=False)
    run_link = serializers.CharField(max_length=2000, allow_blank=True, required=False)
    description = serializers.CharField(allow_blank=True, required=False)
    framework = serializers.CharField(max_length=100, allow_blank=True, required=False)
    params = serializers.DictField(required=False)
    metrics = serializers.DictField(required=False, help_text="name -> number")
    dataset = serializers.CharField(max_length=500, allow_blank=True, required=False)
    code_version = serializers.CharField(max_length=100, allow_blank=True, required=False)
    model_card = serializers.CharField(allow_blank=True, required=False)
    tags = TagsField(required=False)


class TransitionSerializer(serializers.Serializer):
    stage = serializers.CharField(help_text="None, Staging, Production or Archived (any case).")
    archive_existing = serializers.BooleanField(
        required=False, allow_null=True, default=None, help_text="Default: the model's archive_on_promotion."
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="")

    def validate_stage(self, value: str) -> str:
        try:
            return Stage.parse(value).value
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class PromotionRequestSerializer(serializers.Serializer):
    stage = serializers.CharField(required=False, default=Stage.PRODUCTION.value)
    alias = serializers.CharField(required=False, allow_blank=True, default="")
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class RollbackSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1, help_text="The version to make Production again.")
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ApprovalRequestSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    requested_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ApprovalRequest
        fields = [
            "id", "model", "version", "kind", "target_stage", "alias", "archive_existing", "rollback", "reason",
            "status", "requested_by", "requested_at", "decided_by", "decided_at", "comment", "evidence",
        ]  # fmt: skip
        read_only_fields = fields


class DecisionSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, default="")


class VersionEventSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="version.version", read_only=True, allow_null=True)

    class Meta:
        model = VersionEvent
        fields = ["id", "kind", "version", "message", "data", "actor_name", "created_at"]
        read_only_fields = fields


class WebhookSerializer(serializers.ModelSerializer):
    model = serializers.SlugRelatedField(
        slug_field="name", queryset=RegisteredModel.objects.all(), required=False, allow_null=True
    )
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=Webhook.Event.choices), required=False, default=list
    )

    class Meta:
        model = Webhook
        fields = ["id", "name", "url", "events", "model", "enabled", "created_at"]
        read_only_fields = ["id", "created_at"]


class NewWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(
        required=False, allow_blank=True, help_text="Signing secret; generated if empty; shown only in this response."
    )

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]


class WebhookDeliverySerializer(serializers.ModelSerializer):
    delivered_at = serializers.DateTimeField(source="sent_at", read_only=True, allow_null=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id", "event", "payload", "status", "attempts", "response_code", "last_error", "created_at",
            "next_attempt_at", "delivered_at",
        ]  # fmt: skip
        read_only_fields = fields
