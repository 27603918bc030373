from rest_framework import serializers

from ..models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True)
    actor_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "actor",
            "actor_id",
            "ip",
            "action",
            "app_label",
            "model",
            "object_id",
            "object_repr",
            "changes",
            "message",
        ]
        read_only_fields = fields
