"""The models of MLOps: the registry (`registry`), monitoring data (`monitoring`) and what monitors do about
what they see (`monitor_actions`)."""

from .monitor_actions import Breach, MonitorCheck, RetrainingCall, RetrainingHook
from .monitoring import Monitor, MonitoringBatch, PredictionRecord, ReferenceDataset, TaskType
from .registry import (
    ApprovalRequest,
    Artifact,
    ModelAlias,
    ModelVersion,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
    Stage,
    VersionEvent,
    Webhook,
    WebhookDelivery,
    artifact_upload_to,
)

__all__ = [
    "ApprovalRequest",
    "Artifact",
    "Breach",
    "ModelAlias",
    "ModelVersion",
    "ModelVersionTag",
    "Monitor",
    "MonitorCheck",
    "MonitoringBatch",
    "PredictionRecord",
    "ReferenceDataset",
    "RegisteredModel",
    "RegisteredModelTag",
    "RetrainingCall",
    "RetrainingHook",
    "Stage",
    "TaskType",
    "VersionEvent",
    "Webhook",
    "WebhookDelivery",
    "artifact_upload_to",
]
