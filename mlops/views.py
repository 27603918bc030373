from django.http import HttpRequest, HttpResponse

from opsportal.accounts.roles import Role, role_required
from opsportal.portal.views import app_home

from . import services


@role_required(Role.VIEWER)
def index(request: HttpRequest) -> HttpResponse:
    return app_home(request, services.overview())


@role_required(Role.VIEWER)
def model_detail(request: HttpRequest, name: str) -> HttpResponse:
    raise NotImplementedError


@role_required(Role.VIEWER)
def version_detail(request: HttpRequest, name: str, version: int) -> HttpResponse:
    raise NotImplementedError


@role_required(Role.VIEWER)
def approvals(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError
