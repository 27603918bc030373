"""MLOps pages, by domain: the model list, a model, its monitoring, a version, comparing versions, approvals,
webhooks.

Every change goes through `mlops.services`; a page's POST actions are a table dispatched by
`opsportal.portal.actions`, where a service's refusal becomes a form error or a message, and a
successful POST redirects.
"""

from .approval_pages import approval_action, approvals
from .compare_page import compare
from .model_list import index
from .model_page import model_action, model_detail
from .monitoring_actions import monitoring_action
from .monitoring_pages import batch_download, batch_report, monitoring
from .version_page import artifact_download, version_action, version_detail
from .webhook_pages import webhook_action, webhook_list

__all__ = [
    "approval_action",
    "approvals",
    "artifact_download",
    "batch_download",
    "batch_report",
    "compare",
    "index",
    "model_action",
    "model_detail",
    "monitoring",
    "monitoring_action",
    "version_action",
    "version_detail",
    "webhook_action",
    "webhook_list",
]
