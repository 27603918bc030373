from django.http import HttpRequest, HttpResponse

from .context import client_ip, current_ip


class AuditContextMiddleware:
    """Makes the client IP available to services that record audit entries."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = current_ip.set(client_ip(request))
        try:
            return self.get_response(request)
        finally:
            current_ip.reset(token)
