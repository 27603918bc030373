"""MLOps's facade: every write of the model registry goes through here.

Each change runs in one transaction that also writes the model's history
(`VersionEvent`), the portal's audit log and the outbox of registry webhooks, so
the UI, the native API and the MLflow-compatible API behave the same.

The modules, by domain: `registered_models`, `versions`, `stages` (stages and aliases),
`approvals` (and rollback), `artifacts`, `webhooks` (their CRUD), `summary` (the overview
card). Refusals are `opsportal.errors` classes under the registry's names (`errors`).
"""

from .approvals import approve, cancel_request, reject, request_promotion, rollback, rollback_candidates
from .artifacts import ARTIFACT_PATH_RE, upload_artifact
from .batches import PayloadTooLarge, record_batch, table_from_rows, table_from_upload
from .errors import AlreadyExists, ApprovalNeeded, InvalidValue, NotAllowed, NotFound, RegistryError
from .history import Actor
from .monitor_checks import CheckInvalid, delete_check, evaluate_batch, evaluate_window, save_check
from .monitors import create_monitor, delete_monitor, update_monitor
from .predictions import LabelsLogged, PredictionsLogged, cut_prediction_batches, log_labels, log_predictions
from .references import reference_from_artifact, update_schema, upload_reference
from .registered_models import (
    create_model,
    delete_model,
    delete_model_tag,
    get_model,
    rename_model,
    set_model_tag,
    update_model,
)
from .retraining import (
    RetrainingHookInvalid,
    delete_retraining_hook,
    save_retraining_hook,
    test_retraining_hook,
)
from .rollback_proposals import propose_rollback
from .stages import TransitionResult, delete_alias, needs_approval, set_alias, transition_stage
from .summary import overview, recent_transitions, registry_counts
from .validation import (
    ALIAS_RE,
    NAME_RE,
    RESERVED_ALIAS_RE,
    TAG_KEY_MAX,
    TAG_VALUE_MAX,
    VERSION_EDIT_FIELDS,
    validate_alias,
    validate_name,
    validate_tag,
)
from .versions import (
    create_version,
    delete_version,
    delete_version_tag,
    get_version,
    get_version_by_alias,
    latest_versions,
    set_version_tag,
    update_version,
)
from .webhooks import WebhookInvalid, create_webhook, delete_webhook, update_webhook

__all__ = [
    "ALIAS_RE",
    "ARTIFACT_PATH_RE",
    "NAME_RE",
    "RESERVED_ALIAS_RE",
    "TAG_KEY_MAX",
    "TAG_VALUE_MAX",
    "VERSION_EDIT_FIELDS",
    "Actor",
    "AlreadyExists",
    "ApprovalNeeded",
    "CheckInvalid",
    "InvalidValue",
    "LabelsLogged",
    "NotAllowed",
    "NotFound",
    "PayloadTooLarge",
    "PredictionsLogged",
    "RegistryError",
    "RetrainingHookInvalid",
    "TransitionResult",
    "WebhookInvalid",
    "approve",
    "cancel_request",
    "create_model",
    "create_monitor",
    "create_version",
    "create_webhook",
    "cut_prediction_batches",
    "delete_alias",
    "delete_check",
    "delete_model",
    "delete_model_tag",
    "delete_monitor",
    "delete_retraining_hook",
    "delete_version",
    "delete_version_tag",
    "delete_webhook",
    "evaluate_batch",
    "evaluate_window",
    "get_model",
    "get_version",
    "get_version_by_alias",
    "latest_versions",
    "log_labels",
    "log_predictions",
    "needs_approval",
    "overview",
    "propose_rollback",
    "recent_transitions",
    "record_batch",
    "reference_from_artifact",
    "registry_counts",
    "reject",
    "rename_model",
    "request_promotion",
    "rollback",
    "rollback_candidates",
    "save_check",
    "save_retraining_hook",
    "set_alias",
    "set_model_tag",
    "set_version_tag",
    "table_from_rows",
    "table_from_upload",
    "test_retraining_hook",
    "transition_stage",
    "update_model",
    "update_monitor",
    "update_schema",
    "update_version",
    "update_webhook",
    "upload_artifact",
    "upload_reference",
    "validate_alias",
    "validate_name",
    "validate_tag",
]
