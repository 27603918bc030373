"""The one error protocol: what a service raises when it refuses a request.

Every app's services raise a `ServiceError` subclass carrying the message, the field
it concerns (empty when it concerns the request as a whole) and a short code. Each
caller maps it once:

- the REST API's exception handler (`opsportal.api.exception_handler`) answers
  `status` with `{"detail": "field: message", "code": code, "errors": {field: [message]}}`;
- page views show `str(exc)` ("field: message") as an error message
  (`opsportal.portal.actions`);
- the MLflow-compatible API answers MLflow's own error codes (`mlflow_code`).

The message never repeats the field; `str(exc)` puts the two together.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ValidationError as DjangoValidationError


class ServiceError(Exception):
    """A service refused a request. `status` is what an HTTP caller answers."""

    status = 400
    code = "invalid"
    mlflow_code = "INVALID_PARAMETER_VALUE"

    def __init__(self, message: str, *, field: str = "", code: str | None = None) -> None:
        if field and message.startswith(f"{field}: "):
            message = message[len(field) + 2 :]
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message

    def errors(self) -> dict[str, list[str]]:
        """DRF's per-field form of this error."""
        return {self.field or "non_field_errors": [self.message]}


class InvalidInput(ServiceError, ValueError):
    """A value is missing, malformed or not allowed (400). Also a ValueError, as bad values are."""


class NotFound(ServiceError):
    """Something the request names does not exist (404)."""

    status = 404
    code = "not_found"
    mlflow_code = "RESOURCE_DOES_NOT_EXIST"


class Conflict(ServiceError):
    """The request contradicts the current state, e.g. the name is taken (409)."""

    status = 409
    code = "conflict"
    mlflow_code = "RESOURCE_ALREADY_EXISTS"


class NotAllowed(ServiceError):
    """The actor may not do this, whatever the input (403)."""

    status = 403
    code = "permission_denied"
    mlflow_code = "PERMISSION_DENIED"


def from_django(exc: DjangoValidationError) -> InvalidInput:
    """A Django ValidationError (from a model's clean, say) as the protocol's InvalidInput."""
    if hasattr(exc, "error_dict"):
        field, errors = next(iter(exc.message_dict.items()))
        return InvalidInput(" ".join(errors), field="" if field == "__all__" else field)
    return InvalidInput(" ".join(exc.messages))


@contextmanager
def as_field(field: str) -> Iterator[None]:
    """Re-raise a ServiceError from inside the block as concerning `field` of the request.

    For a look-up named in a request body: a missing prompt named in `prompt` is that
    field's 400, not a 404 of the URL.
    """
    try:
        yield
    except ServiceError as exc:
        raise InvalidInput(exc.message, field=field, code=exc.code if exc.code != "not_found" else "invalid") from None
