"""OpenAPI document post-processing: links from the answers that hand out identifiers to the operations that take them.

drf-spectacular has no first-class OpenAPI links, so this hook (`SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`)
derives them from the URL structure every viewset shares. For an operation whose path ends in a
parameter (`/aiops/incidents/{id}/acknowledge/`, `/mlops/models/{name}/aliases/{alias}/`), the
identifier comes from the collection in front of that parameter:

- its create operation (`POST /aiops/integrations/` answers `id`; `POST /mlops/models/{name}/aliases/`
  takes `alias` in its request body), and
- its list (`GET /aiops/incidents/` answers `results[0].id`).

Parameters earlier in the path are the ones the source request itself was sent with
(`$request.path.model_name`). Clients (and schemathesis' stateful tests) follow these links from an
answer to the next call.
"""

from __future__ import annotations

import re
from typing import Any

# A path parameter named after its parent (`model_name`, `dataset_pk`) is that parent's `name` or `id`.
_FIELD_OF = {"model_name": "name", "prompt_name": "name", "dataset_pk": "id", "run_pk": "id"}
_PARAMETER = re.compile(r"{([^}]+)}")


def _resolve(schema: dict | None, components: dict) -> dict:
    while schema and "$ref" in schema:
        schema = components.get(schema["$ref"].rsplit("/", 1)[-1], {})
    return schema or {}


def _properties(schema: dict | None, components: dict) -> dict:
    schema = _resolve(schema, components)
    properties = dict(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        properties.update(_properties(part, components))
    return properties


def _json_schema(container: dict) -> dict | None:
    return container.get("content", {}).get("application/json", {}).get("schema")


def _source_expression(operation: dict, status: str, field: str, components: dict) -> str | None:
    """Where `field` is in this operation's exchange: its answer, the first item of its page, or its request."""
    answer = _properties(_json_schema(operation["responses"][status]), components)
    if field in answer:
        return f"$response.body#/{field}"
    results = answer.get("results")
    if results is not None and field in _properties(_resolve(results, components).get("items"), components):
        return f"$response.body#/results/0/{field}"
    if operation.get("requestBody") and field in _properties(_json_schema(operation["requestBody"]), components):
        return f"$request.body#/{field}"
    return None


def _add_link(source: dict, target: dict, target_path: str, source_path: str, components: dict) -> None:
    names = _PARAMETER.findall(target_path)
    last = names[-1]
    status = next((code for code in ("201", "200") if code in source.get("responses", {})), None)
    if status is None:
        return
    expression = _source_expression(source, status, _FIELD_OF.get(last, last), components)
    if expression is None:
        return
    parameters = {last: expression}
    for name in names[:-1]:
        if f"{{{name}}}" not in source_path:
            return
        parameters[name] = f"$request.path.{name}"
    links = source["responses"][status].setdefault("links", {})
    links[target["operationId"]] = {
        "operationId": target["operationId"],
        "parameters": parameters,
        "description": f"The {last} this answer names, for {target['operationId']}.",
    }


def add_links(result: dict, generator: Any, request: Any, public: bool, **kwargs: Any) -> dict:
    """Add `links` to the responses of create and list operations, pointing at the operations their identifiers open."""
    paths = result.get("paths", {})
    components = result.get("components", {}).get("schemas", {})
    for target_path, target_item in paths.items():
        names = _PARAMETER.findall(target_path)
        if not names:
            continue
        source_path = target_path[: target_path.rindex(f"{{{names[-1]}}}")]
        source_item = paths.get(source_path, {})
        for method, target in target_item.items():
            if method not in {"get", "post", "put", "patch", "delete"} or "operationId" not in target:
                continue
            for source_method in ("post", "get"):
                if source_method in source_item:
                    _add_link(source_item[source_method], target, target_path, source_path, components)
    return result
