"""The OpenAPI document's shared parts: the Bearer scheme, the error shape, the description, and what
the per-view decorators cannot say by themselves.

Finishing touches on the generated document (``finish``):

- every operation that takes a JSON body documents the 400 ``invalid_json`` a malformed body gets, and
  every operation the 414 a URL over MAX_URL_BYTES gets;
- input rules that JSON Schema cannot state (one field against another, or against the server's state)
  are declared on the input schema, as its ``input_rules`` class attribute (status, sentence): every
  operation taking that schema lists them in its description and under ``x-input-rules``
  (``{"status", "rule"}``), and documents the status that breaking one gets;
- a request body with a required field is itself required;
- a body schema's ``documented_required`` fields are marked required in the document although the view,
  not the schema, refuses a request without them (with its own, documented, error);
- a property whose schema names a setting under ``x-maximum-setting`` gets that setting's value as its
  ``maximum`` (a deployment's cap, not a constant).
"""

from __future__ import annotations

import re
from typing import Any

from apiflask import APIFlask

from .body_limits import MAX_URL_BYTES
from .errors import ERROR_SCHEMA

TITLE = "Image classification control API"
VERSION = "1.0.0"
INPUT_RULES_KEY = "x-input-rules"
MAXIMUM_SETTING_KEY = "x-maximum-setting"
_ERROR_REF = {"$ref": "#/components/schemas/HTTPError"}
_RULE_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def configure(app: APIFlask) -> None:
    app.config["SECURITY_SCHEMES"] = {
        "BearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "from POST /token",
        }
    }
    app.config["HTTP_ERROR_SCHEMA"] = ERROR_SCHEMA
    app.config["VALIDATION_ERROR_SCHEMA"] = ERROR_SCHEMA
    app.config["DESCRIPTION"] = (
        "Image classification (ResNet50 on TorchServe). Register, get a token from /token, send images to "
        '/forward. Every error is JSON: {"error": "<slug>", "message": "<text>"}.'
    )

    @app.spec_processor
    def _finish(spec: dict[Any, Any] | str) -> dict[Any, Any] | str:
        return finish(app, spec) if isinstance(spec, dict) else spec


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": dict(_ERROR_REF)}}}


def _input_schemas(app: APIFlask) -> dict[tuple[str, str], tuple[Any, list[Any]]]:
    """(OpenAPI path, lower-case method) -> its view's body schema (or None) and every input schema."""
    found: dict[tuple[str, str], tuple[Any, list[Any]]] = {}
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions.get(rule.endpoint), "_spec", {})
        body = spec.get("body")
        schemas = [schema for schema in (body, *(s for s, _ in spec.get("args", []))) if schema is not None]
        path = _RULE_PARAMETER.sub(r"{\1}", rule.rule)
        for method in rule.methods or ():
            found[(path, method.lower())] = (body, schemas)
    return found


def _mark_required(spec: dict[str, Any], operation: dict[str, Any], body: Any) -> None:
    """The body's documented_required fields, and the body itself when any field is required."""
    names = list(getattr(body, "documented_required", ()))
    request_body = operation.get("requestBody", {})
    for media in request_body.get("content", {}).values():
        schema = media.get("schema", {})
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            schema = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
        if names:
            schema["required"] = sorted({*schema.get("required", []), *names})
        if schema.get("required"):
            request_body["required"] = True


def _set_maximums(node: Any, config: dict[str, Any]) -> None:
    if isinstance(node, dict):
        setting = node.get(MAXIMUM_SETTING_KEY)
        if isinstance(setting, str) and setting in config:
            node["maximum"] = int(config[setting])
        for value in node.values():
            _set_maximums(value, config)
    elif isinstance(node, list):
        for value in node:
            _set_maximums(value, config)


# (OpenAPI path, method) -> media types its 200 answer may also have, e.g. GET /history's text/csv.
ALSO_ANSWERS: dict[tuple[str, str], dict[str, Any]] = {}


def also_answers(path: str, method: str, media_type: str, schema: dict[str, Any]) -> None:
    """Document that ``method path`` may answer 200 with ``media_type`` as well as JSON."""
    ALSO_ANSWERS.setdefault((path, method.lower()), {})[media_type] = {"schema": schema}


def finish(app: APIFlask, spec: dict[str, Any]) -> dict[str, Any]:
    inputs = _input_schemas(app)
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if (path, method) in ALSO_ANSWERS and "200" in responses:
                responses["200"].setdefault("content", {}).update(ALSO_ANSWERS[(path, method)])
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content and "400" not in responses:
                responses["400"] = _error_response("The body is not valid JSON (invalid_json)")
            responses.setdefault(
                "414", _error_response(f"The URL is over {MAX_URL_BYTES} bytes (uri_too_long)")
            )
            body, schemas = inputs.get((path, method), (None, []))
            _mark_required(spec, operation, body)
            declared = [rule for schema in schemas for rule in getattr(schema, "input_rules", ())]
            if declared:
                operation[INPUT_RULES_KEY] = [{"status": status, "rule": rule} for status, rule in declared]
                listed = "".join(f"- {rule} ({status})\n" for status, rule in declared)
                operation["description"] = (
                    operation.get("description", "") + "\n\nInput rules beyond the schema:\n" + listed
                ).strip()
                for status, rule in declared:
                    responses.setdefault(str(status), _error_response(rule))
    _set_maximums(spec.get("components", {}), dict(app.config))
    _set_maximums(spec.get("paths", {}), dict(app.config))
    return spec
