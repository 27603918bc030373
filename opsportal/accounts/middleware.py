"""Login is required everywhere except views marked `login_not_required`.

Browsers without a session are sent to the login page; API-style paths get a
JSON 401. A valid API token in the Authorization header logs the request in
for this request only, so plain Django views (metrics, MLflow-compatible API)
accept tokens too.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, JsonResponse

from .authentication import InvalidToken, authenticate_request
from .throttling import user_throttle_for

API_PREFIXES = ("/api/", "/mlflow/", "/metrics")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES)


def unauthorized(message: str, path: str = "") -> JsonResponse:
    if path.startswith("/mlflow/"):
        # MLflow clients read errors in MLflow's own form.
        body = {"error_code": "UNAUTHENTICATED", "message": message}
    else:
        body = {"detail": message, "code": "not_authenticated"}
    response = JsonResponse(body, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="api"'
    return response


class LoginRequiredMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs) -> HttpResponse | None:
        if request.path.startswith(settings.STATIC_URL):
            return None
        if not getattr(view_func, "login_required", True):
            return None
        # The token check also counts the request against the user's rate limit (usually without waiting on
        # Redis: the count is sent after the response; see opsportal/accounts/throttling.py).
        request._opsportal_user_throttle = user_throttle_for(view_func)
        try:
            token_auth = authenticate_request(request)
        except InvalidToken as exc:
            return unauthorized(str(exc), request.path)
        if token_auth is not None:
            request.user = token_auth[0]
            # Token clients do not carry a CSRF cookie; the token is the proof.
            request._dont_enforce_csrf_checks = True
            return None
        if request.user.is_authenticated:
            return None
        if is_api_path(request.path):
            return unauthorized("Authentication required: send 'Authorization: Bearer <token>'.", request.path)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
