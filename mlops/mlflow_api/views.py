"""MLflow's model registry REST API (2.0) over the portal's registry, so `mlflow.MlflowClient` works against it.

`MLFLOW_TRACKING_URI=http://HOST/mlflow` and `MLFLOW_TRACKING_TOKEN=<API token>`. Requests follow
mlflow/protos/model_registry.proto: GET takes query parameters, POST/PATCH/DELETE a JSON body; answers are
MLflow's JSON, errors `{"error_code", "message"}` with MLflow's statuses (a service's refusal answers its
`mlflow_code`). Every write goes through `mlops.services`, so history, audit, webhooks and approvals behave
as in the UI. Reads need the viewer role, writes the operator role.

Token clients are exempt from CSRF (the authentication middleware marks them); a browser session keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser, User
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict

from mlops import services
from mlops.models import ModelVersion, RegisteredModel, Stage
from opsportal.accounts.roles import Role, has_role
from opsportal.errors import ServiceError

from . import search
from .serialize import (
    model_rows,
    model_version_by_alias_json_text,
    model_version_json_text,
    model_versions_json,
    model_versions_page_json,
    new_model_version_json,
    new_registered_model_json,
    registered_model_json_text,
    registered_models_json,
    registered_models_page_json,
    version_rows,
)

Actor = User | AnonymousUser

MODELS_MAX_RESULTS = 1000
MODELS_DEFAULT_RESULTS = 100
# The client asks for 10,000 versions when the caller gives no max_results.
VERSIONS_MAX_RESULTS = 10000
VERSIONS_DEFAULT_RESULTS = 10000

# A page of 100 models is some 170 kB of JSON; no spaces after separators.
COMPACT = {"separators": (",", ":")}
STATUS = {
    "RESOURCE_ALREADY_EXISTS": 400,
    "INVALID_PARAMETER_VALUE": 400,
    "MALFORMED_REQUEST": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "ENDPOINT_NOT_FOUND": 404,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
}


class MlflowError(Exception):
    """An error answered in MLflow's form (the status follows from the code)."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def error_response(error_code: str, message: str, status: int | None = None) -> JsonResponse:
    return JsonResponse({"error_code": error_code, "message": message}, status=status or STATUS[error_code])


def invalid(message: str) -> MlflowError:
    return MlflowError("INVALID_PARAMETER_VALUE", message)


# --- Request parameters ----------------------------------------------------------------------------------------------


class Params:
    """A request's parameters: the query string for GET, the JSON object in the body otherwise."""

    def __init__(self, data: dict | QueryDict) -> None:
        self.data = data
        self.query = isinstance(data, QueryDict)

    @classmethod
    def from_request(cls, request: HttpRequest) -> Params:
        if request.method == "GET" or not request.body.strip():
            return cls(request.GET)
        try:
            data = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MlflowError("MALFORMED_REQUEST", f"The request body is not valid JSON: {exc}.") from None
        if not isinstance(data, dict):
            raise MlflowError("MALFORMED_REQUEST", "The request body must be a JSON object.")
        return cls(data)

    def _raw(self, name: str) -> object:
        return self.data.get(name)

    def string(self, name: str, *, required: bool = False) -> str | None:
        value = self._raw(name)
        if value is None or (required and value == ""):
            if required:
                raise invalid(f"Missing value for required parameter '{name}'.")
            return None
        if not isinstance(value, str):
            raise invalid(f"Invalid value {value!r} for parameter '{name}': expected a string.")
        return value

    def version(self, name: str = "version") -> str:
        value = self._raw(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.string(name, required=True)

    def strings(self, name: str) -> list[str]:
        if self.query:
            return self.data.getlist(name)
        value = self._raw(name)
        if value is None:
            return []
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise invalid(f"Invalid value for parameter '{name}': expected a list of strings.")
        return value

    def integer(self, name: str, *, default: int, maximum: int) -> int:
        value = self._raw(name)
        if value is None or value == "":
            return default
        try:
            if isinstance(value, bool | float):
                raise ValueError
            number = int(value)
        except (TypeError, ValueError):
            raise invalid(f"Invalid value {value!r} for parameter '{name}': expected a whole number.") from None
        if not 1 <= number <= maximum:
            raise invalid(f"Invalid value for parameter '{name}': it must be between 1 and {maximum}, got {number}.")
        return number

    def boolean(self, name: str) -> bool | None:
        value = self._raw(name)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise invalid(f"Invalid value {value!r} for parameter '{name}': expected true or false.")

    def tags(self, name: str = "tags") -> dict[str, str]:
        value = self._raw(name)
        if value is None:
            return {}
        if not isinstance(value, list):
            raise invalid(f"Invalid value for parameter '{name}': expected a list of {{key, value}} objects.")
        tags = {}
        for tag in value:
            if not isinstance(tag, dict) or not isinstance(tag.get("key"), str) or not tag["key"]:
                raise invalid(f"Invalid tag {tag!r} in '{name}': each tag needs a string 'key'.")
            tag_value = tag.get("value", "")
            if tag_value is not None and not isinstance(tag_value, str):
                raise invalid(f"Invalid value for tag {tag['key']!r}: expected a string.")
            tags[tag["key"]] = tag_value or ""
        return tags


# --- Look-ups and shapes -------------------------------------------------------------------------------------------


def _model(params: Params) -> RegisteredModel:
    return services.get_model(params.string("name", required=True))


def _version(params: Params) -> ModelVersion:
    return services.get_version(_model(params), params.version())


def _model_json(name: str) -> dict | RawJSON:
    if connection.vendor == "postgresql":
        text = registered_model_json_text(name)
        if text is None:
            raise services.NotFound(f"Registered Model with name={name} not found")
        return RawJSON(f'{{"registered_model": {text}}}')
    rows = list(model_rows(RegisteredModel.objects.filter(name=name)))
    if not rows:
        raise services.NotFound(f"Registered Model with name={name} not found")
    return {"registered_model": registered_models_json(rows)[0]}


def _version_json(version: ModelVersion) -> dict:
    rows = list(version_rows(ModelVersion.objects.filter(pk=version.pk)))
    return {"model_version": model_versions_json(rows)[0]}


def _approval_needed(result: services.TransitionResult) -> None:
    if result.request is not None:
        raise services.ApprovalNeeded(result.request)


# --- Registered models -----------------------------------------------------------------------------------------------


def create_registered_model(params: Params, user: Actor) -> dict:
    name = params.string("name", required=True)
    model = services.create_model(
        name=name, actor=user, description=params.string("description") or "", tags=params.tags()
    )
    return {"registered_model": new_registered_model_json(model)}


def get_registered_model(params: Params, user: Actor) -> dict:
    return _model_json(services.validate_name(params.string("name", required=True)))


def update_registered_model(params: Params, user: Actor) -> dict:
    model = _model(params)
    description = params.string("description")
    if description is not None:
        model = services.update_model(model=model, actor=user, description=description)
    return _model_json(model.name)


def rename_registered_model(params: Params, user: Actor) -> dict:
    model = _model(params)
    new_name = params.string("new_name", required=True)
    model = services.rename_model(model=model, new_name=new_name, actor=user)
    return _model_json(model.name)


def delete_registered_model(params: Params, user: Actor) -> dict:
    services.delete_model(model=_model(params), actor=user)
    return {}


def _next_page(offset: int) -> str:
    """The `next_page_token` member of a page's JSON text."""
    return f', "next_page_token": {json.dumps(search.page_token(offset))}'


def search_registered_models(params: Params, user: Actor) -> dict:
    max_results = params.integer("max_results", default=MODELS_DEFAULT_RESULTS, maximum=MODELS_MAX_RESULTS)
    try:
        condition = search.registered_model_filter(params.string("filter"))
        order = search.ordering(params.strings("order_by"), search.MODEL_ORDER_KEYS, tiebreakers=["name"])
        offset = search.page_offset(params.string("page_token"))
    except search.SearchError as exc:
        raise invalid(exc.message) from None
    if connection.vendor == "postgresql":
        # The database builds the page's JSON, from the search's ids, in one statement.
        ids = RegisteredModel.objects.filter(condition).order_by(*order).values_list("id", flat=True)
        text, more = registered_models_page_json(ids[offset : offset + max_results + 1], max_results)
        return RawJSON(f'{{"registered_models": {text}{_next_page(offset + max_results) if more else ""}}}')
    rows = list(
        model_rows(RegisteredModel.objects.filter(condition).order_by(*order))[offset : offset + max_results + 1]
    )
    answer: dict = {"registered_models": registered_models_json(rows[:max_results])}
    if len(rows) > max_results:
        answer["next_page_token"] = search.page_token(offset + max_results)
    return answer


def set_registered_model_tag(params: Params, user: Actor) -> dict:
    model = _model(params)
    services.set_model_tag(
        model=model, key=params.string("key", required=True), value=params.string("value") or "", actor=user
    )
    return {}


def delete_registered_model_tag(params: Params, user: Actor) -> dict:
    services.delete_model_tag(model=_model(params), key=params.string("key", required=True), actor=user)
    return {}


def _stages(params: Params) -> list[str]:
    try:
        return [Stage.parse(stage).value for stage in params.strings("stages")]
    except ValueError as exc:
        raise invalid(f"Invalid value for parameter 'stages': {exc}.") from None


def get_latest_versions(params: Params, user: Actor) -> dict:
    model = _model(params)
    versions = services.latest_versions(model, _stages(params) or None)
    rows = list(version_rows(ModelVersion.objects.filter(pk__in=[v.pk for v in versions]).order_by("version")))
    return {"model_versions": model_versions_json(rows)}


def set_registered_model_alias(params: Params, user: Actor) -> dict:
    model = _model(params)
    alias = params.string("alias", required=True)
    version = services.get_version(model, params.version())
    _approval_needed(services.set_alias(model=model, alias=alias, version=version, actor=user))
    return {}


def delete_registered_model_alias(params: Params, user: Actor) -> dict:
    services.delete_alias(model=_model(params), alias=params.string("alias", required=True), actor=user)
    return {}


def get_model_version_by_alias(params: Params, user: Actor) -> dict | RawJSON:
    name = services.validate_name(params.string("name", required=True))
    alias = params.string("alias", required=True)
    if connection.vendor == "postgresql":
        text = model_version_by_alias_json_text(name, alias)
        if text is not None:
            return RawJSON(f'{{"model_version": {text}}}')
    # No such model or alias (the look-ups say which), or another database.
    return _version_json(services.get_version_by_alias(services.get_model(name), alias))


# --- Model versions --------------------------------------------------------------------------------------------------


def create_model_version(params: Params, user: Actor) -> dict:
    name = params.string("name", required=True)
    fields = {key: params.string(key) for key in ("run_id", "run_link", "description")}
    version = services.create_version(
        model=name,
        actor=user,
        source=params.string("source", required=True),
        tags=params.tags(),
        **{key: value for key, value in fields.items() if value is not None},
    )
    return {"model_version": new_model_version_json(version)}


def get_model_version(params: Params, user: Actor) -> dict | RawJSON:
    name = services.validate_name(params.string("name", required=True))
    version = params.version()
    number = version.strip()
    if connection.vendor == "postgresql" and number.isascii() and number.isdigit() and 0 < int(number) < 2**31:
        text = model_version_json_text(name, int(version))
        if text is not None:
            return RawJSON(f'{{"model_version": {text}}}')
    # No such model or version, or a version that is no number (the look-ups say which), or another database.
    return _version_json(services.get_version(services.get_model(name), version))


def update_model_version(params: Params, user: Actor) -> dict:
    version = _version(params)
    description = params.string("description")
    if description is not None:
        version = services.update_version(version=version, actor=user, description=description)
    return _version_json(version)


def transition_model_version_stage(params: Params, user: Actor) -> dict:
    version = _version(params)
    stage = params.string("stage", required=True)
    archive = params.boolean("archive_existing_versions")
    try:
        target = Stage.parse(stage)
    except ValueError as exc:
        raise invalid(f"Invalid value for parameter 'stage': {exc}.") from None
    if archive and target not in (Stage.STAGING, Stage.PRODUCTION):
        raise invalid(
            f"archive_existing_versions only applies to a move to Staging or Production, not to {target.value}."
        )
    result = services.transition_stage(version=version, stage=target, actor=user, archive_existing=archive)
    _approval_needed(result)
    return _version_json(result.version)


def delete_model_version(params: Params, user: Actor) -> dict:
    services.delete_version(version=_version(params), actor=user)
    return {}


def get_model_version_download_uri(params: Params, user: Actor) -> dict:
    return {"artifact_uri": _version(params).source}


def search_model_versions(params: Params, user: Actor) -> dict:
    max_results = params.integer("max_results", default=VERSIONS_DEFAULT_RESULTS, maximum=VERSIONS_MAX_RESULTS)
    try:
        condition = search.model_version_filter(params.string("filter"))
        order = search.ordering(
            params.strings("order_by"),
            search.VERSION_ORDER_KEYS,
            tiebreakers=["model__name", "-version"],
            default=["last_updated_timestamp DESC"],
        )
        offset = search.page_offset(params.string("page_token"))
    except search.SearchError as exc:
        raise invalid(exc.message) from None
    if connection.vendor == "postgresql":
        ids = ModelVersion.objects.filter(condition).order_by(*order).values_list("id", flat=True)
        text, more = model_versions_page_json(ids[offset : offset + max_results + 1], max_results)
        return RawJSON(f'{{"model_versions": {text}{_next_page(offset + max_results) if more else ""}}}')
    rows = list(
        version_rows(ModelVersion.objects.filter(condition).order_by(*order))[offset : offset + max_results + 1]
    )
    answer: dict = {"model_versions": model_versions_json(rows[:max_results])}
    if len(rows) > max_results:
        answer["next_page_token"] = search.page_token(offset + max_results)
    return answer


def set_model_version_tag(params: Params, user: Actor) -> dict:
    version = _version(params)
    services.set_version_tag(
        version=version, key=params.string("key", required=True), value=params.string("value") or "", actor=user
    )
    return {}


def delete_model_version_tag(params: Params, user: Actor) -> dict:
    services.delete_version_tag(version=_version(params), key=params.string("key", required=True), actor=user)
    return {}


# --- Routing -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    handler: Callable[[Params, Actor], dict]
    role: Role


def _read(handler: Callable[[Params, Actor], dict]) -> Endpoint:
    return Endpoint(handler, Role.VIEWER)


def _write(handler: Callable[[Params, Actor], dict]) -> Endpoint:
    return Endpoint(handler, Role.OPERATOR)


# Path below api/2.0/mlflow/ -> HTTP method -> endpoint (model_registry.proto's ModelRegistryService).
ROUTES: dict[str, dict[str, Endpoint]] = {
    "registered-models/create": {"POST": _write(create_registered_model)},
    "registered-models/get": {"GET": _read(get_registered_model)},
    "registered-models/search": {"GET": _read(search_registered_models)},
    "registered-models/update": {"PATCH": _write(update_registered_model)},
    "registered-models/rename": {"POST": _write(rename_registered_model)},
    "registered-models/delete": {"DELETE": _write(delete_registered_model)},
    "registered-models/set-tag": {"POST": _write(set_registered_model_tag)},
    "registered-models/delete-tag": {"DELETE": _write(delete_registered_model_tag)},
    "registered-models/get-latest-versions": {"POST": _read(get_latest_versions), "GET": _read(get_latest_versions)},
    "registered-models/alias": {
        "GET": _read(get_model_version_by_alias),
        "POST": _write(set_registered_model_alias),
        "DELETE": _write(delete_registered_model_alias),
    },
    "model-versions/create": {"POST": _write(create_model_version)},
    "model-versions/get": {"GET": _read(get_model_version)},
    "model-versions/search": {"GET": _read(search_model_versions)},
    "model-versions/update": {"PATCH": _write(update_model_version)},
    "model-versions/transition-stage": {"POST": _write(transition_model_version_stage)},
    "model-versions/delete": {"DELETE": _write(delete_model_version)},
    "model-versions/get-download-uri": {"GET": _read(get_model_version_download_uri)},
    "model-versions/set-tag": {"POST": _write(set_model_version_tag)},
    "model-versions/delete-tag": {"DELETE": _write(delete_model_version_tag)},
}


@dataclass
class RawJSON:
    """An answer already encoded as JSON text (built by the database)."""

    text: str


def endpoint(request: HttpRequest, path: str) -> HttpResponse:
    """Answers one call of the MLflow registry API (`path` is below api/2.0/mlflow/)."""
    methods = ROUTES.get(path.rstrip("/"))
    if methods is None:
        return unknown_endpoint(request)
    route = methods.get(request.method)
    if route is None:
        allowed = ", ".join(methods)
        response = error_response(
            "ENDPOINT_NOT_FOUND", f"{path} does not accept {request.method}; use {allowed}.", status=405
        )
        response["Allow"] = allowed
        return response
    if not has_role(request.user, route.role):
        return error_response("PERMISSION_DENIED", f"This call needs the {route.role.label.lower()} role.")
    try:
        answer = route.handler(Params.from_request(request), request.user)
        if isinstance(answer, RawJSON):
            return HttpResponse(answer.text, content_type="application/json")
        return JsonResponse(answer, json_dumps_params=COMPACT)
    except MlflowError as exc:
        return error_response(exc.error_code, exc.message)
    except ServiceError as exc:
        return error_response(exc.mlflow_code, exc.message)


def unknown_endpoint(request: HttpRequest) -> JsonResponse:
    return error_response("ENDPOINT_NOT_FOUND", f"No MLflow API endpoint {request.method} {request.path}.")
