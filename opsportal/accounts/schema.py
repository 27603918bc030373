"""Tells drf-spectacular how API tokens are sent, so the docs offer an 'Authorize' box."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "opsportal.accounts.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A personal API token from your profile page: `Authorization: Bearer <token>`.",
        }
