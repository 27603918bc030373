"""The registry's refusals, on the portal's one error protocol (`opsportal.errors`).

The names are the registry's own; each is (or subclasses) a core class, so the REST API's
exception handler, the pages and the MLflow-compatible API (by `mlflow_code`) map them
the one way: `AlreadyExists` (409, MLflow RESOURCE_ALREADY_EXISTS), `NotFound`
(RESOURCE_DOES_NOT_EXIST), `InvalidValue` (INVALID_PARAMETER_VALUE), `NotAllowed` and
`ApprovalNeeded` (PERMISSION_DENIED).
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from opsportal.errors import Conflict, InvalidInput, NotAllowed, NotFound, ServiceError

from ..models import ApprovalRequest

RegistryError = ServiceError

__all__ = ["AlreadyExists", "ApprovalNeeded", "InvalidValue", "NotAllowed", "NotFound", "RegistryError"]


class AlreadyExists(Conflict):
    """The name (or artifact path) is taken (409).

    The message names the taken value, so it is said alone, as the APIs always answered it:
    `field` still tells a page which form field to mark.
    """

    code = "already_exists"

    def __str__(self) -> str:
        return self.message


class InvalidValue(InvalidInput):
    """A value the registry does not accept (400; MLflow INVALID_PARAMETER_VALUE)."""


class ApprovalNeeded(NotAllowed):
    """The change waits for an admin: `request` is the (new or already open) approval request.

    The native API answers it 202 with the request; the MLflow API, which has no such answer,
    PERMISSION_DENIED with this message.
    """

    code = "approval_needed"

    def __init__(self, request: ApprovalRequest) -> None:
        version = request.version
        super().__init__(
            f"Moving {version.model.name} version {version.version} to {request.target} needs an admin's "
            f"approval: approval request #{request.pk} is pending ({settings.OPSPORTAL_BASE_URL}"
            f"{reverse('mlops:approvals')}#request-{request.pk})."
        )
        self.request = request
