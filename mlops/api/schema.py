"""The registry API's path parameters in the OpenAPI document, with the rules the registry really applies.

The URL patterns accept any segment without '/' (so a bad name answers the registry's own 404 or 400,
naming it); a name, version, alias or tag key that can exist is narrower, as `mlops.services` checks them
when they are created. The document states those narrower rules, so clients and fuzzers know them.
"""

from __future__ import annotations

import re

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiParameter

from .. import services
from ..models import RegisteredModel

NAME_MAX = RegisteredModel._meta.get_field("name").max_length
ALIAS_MAX = 255
# services.NAME_RE, and not only dots (validate_name refuses "." and "..").
NAME_PATTERN = r"^(?!\.+$)" + services.NAME_RE.pattern.removeprefix("^")

_NAME = {"type": "string", "pattern": NAME_PATTERN, "minLength": 1, "maxLength": NAME_MAX}
_NAME_HELP = f"A registered model's name: 1 to {NAME_MAX} characters, no '/' or control characters, not only dots."
_ALIAS = {"type": "string", "pattern": services.ALIAS_RE.pattern, "minLength": 1, "maxLength": ALIAS_MAX}
_KEY = {"type": "string", "pattern": rf"^[^/]{{1,{services.TAG_KEY_MAX}}}$", "minLength": 1,
        "maxLength": services.TAG_KEY_MAX}  # fmt: skip

PATH_PARAMETERS = {
    parameter.name: parameter
    for parameter in [
        OpenApiParameter("name", _NAME, OpenApiParameter.PATH, description=_NAME_HELP),
        OpenApiParameter("model_name", _NAME, OpenApiParameter.PATH, description=_NAME_HELP),
        OpenApiParameter(
            "version", {"type": "integer", "minimum": 1}, OpenApiParameter.PATH,
            description="The version's number within its model (1, 2, 3 ... as registered).",
        ),
        OpenApiParameter(
            "alias", _ALIAS, OpenApiParameter.PATH,
            description=f"An alias: letters, digits, '_', '-', '.', at most {ALIAS_MAX} characters "
            "('latest' and v<number> are reserved and never set).",
        ),
        OpenApiParameter(
            "key", _KEY, OpenApiParameter.PATH,
            description=f"A tag's key: at most {services.TAG_KEY_MAX} characters.",
        ),
    ]
}  # fmt: skip


class RegistrySchema(AutoSchema):
    """Documents each of the registry's path parameters that an operation's path has (PATH_PARAMETERS)."""

    def get_override_parameters(self) -> list:
        present = set(re.findall(r"{([^}]+)}", self.path))
        own = [parameter for name, parameter in PATH_PARAMETERS.items() if name in present]
        return [*own, *super().get_override_parameters()]
