"""OpenAPI at /openapi.json and Swagger UI at /docs, generated from the validating schemas."""

from __future__ import annotations

import re
from pathlib import Path

from tests.control_api.conftest import app_on, torchserve_settings


def test_openapi_document(client) -> None:
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert set(spec["paths"]) >= {"/register", "/token", "/forward", "/history", "/stats", "/health"}
    assert spec["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "from POST /token",
    }
    forward = spec["paths"]["/forward"]["post"]
    assert forward["security"] == [{"BearerAuth": []}]
    assert "multipart/form-data" in forward["requestBody"]["content"]
    assert {"400", "401", "404", "413", "415", "422", "503", "504"} <= set(forward["responses"])
    register = spec["paths"]["/register"]["post"]
    schema = register["requestBody"]["content"]["application/json"]["schema"]
    assert "$ref" in schema or "properties" in schema
    assert "security" not in register
    for path in ("/history", "/stats"):
        assert spec["paths"][path]["get"]["security"] == [{"BearerAuth": []}]
    assert spec["paths"]["/history"]["delete"]["security"] == [{"BearerAuth": []}]
    params = {p["name"] for p in spec["paths"]["/history"]["get"]["parameters"]}
    assert {"page", "per_page", "status_code", "username", "since", "until"} <= params


def test_swagger_ui(client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200 and b"swagger" in response.data.lower()


def test_openapi_documents_the_ops_endpoints(client) -> None:
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]
    assert {"/models", "/models/{name}", "/models/{name}/{version}", "/audit", "/metrics"} <= set(paths)
    assert {"/models/{name}/{version}/default", "/models/{name}/{version}/workers"} <= set(paths)
    for path, method in (("/models", "get"), ("/models", "post"), ("/audit", "get")):
        assert paths[path][method]["security"] == [{"BearerAuth": []}], (path, method)
    assert "security" not in paths["/metrics"]["get"]
    assert "429" in paths["/token"]["post"]["responses"] and "429" in paths["/forward"]["post"]["responses"]
    assert {"model", "version"} <= {p["name"] for p in paths["/stats"]["get"]["parameters"]}


def _operations(spec: dict) -> list[tuple[str, str, dict]]:
    methods = ("get", "put", "post", "delete", "patch")
    return [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items() if m in methods]


def test_every_json_body_documents_the_invalid_json_400(client) -> None:
    spec = client.get("/openapi.json").get_json()
    with_json = [
        (path, method, op)
        for path, method, op in _operations(spec)
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]

    response = client.post("/register", data=b"{not json", content_type="application/json")

    assert len(with_json) >= 6
    for path, method, op in with_json:
        assert "400" in op["responses"], (path, method)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_json"


def test_input_rules_beyond_the_schema_are_stated(client) -> None:
    spec = client.get("/openapi.json").get_json()
    paths = spec["paths"]

    since_until = {"status": 422, "rule": "`since` must not be after `until`."}
    for path in ("/stats", "/history", "/audit", "/me/history", "/me/usage"):
        assert since_until in paths[path]["get"]["x-input-rules"], path
        assert "`since` must not be after `until`. (422)" in paths[path]["get"]["description"], path
    workers = paths["/models/{name}/{version}/workers"]["put"]
    assert {"status": 422, "rule": "`min` must not exceed `max`."} in workers["x-input-rules"]
    forward = paths["/forward"]["post"]
    assert {rule["status"] for rule in forward["x-input-rules"]} == {400, 413, 415, 422}
    assert {"413", "415", "422"} <= set(forward["responses"])
    assert paths["/users/{user_id}"]["patch"]["x-input-rules"][0]["status"] == 422
    assert "x-input-rules" not in paths["/token"]["post"]


def test_a_stated_rule_is_what_the_api_enforces(client, auth) -> None:
    admin = auth.admin_headers()

    response = client.get("/stats?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", headers=admin)

    assert response.status_code == 422
    assert response.get_json()["details"]["query"]["until"] == ["since must not be after until."]


def test_forward_requires_its_file_and_bodies_with_required_fields_are_required(client) -> None:
    spec = client.get("/openapi.json").get_json()
    forward = spec["paths"]["/forward"]["post"]["requestBody"]

    assert forward["required"] is True
    assert spec["components"]["schemas"]["ForwardForm"]["required"] == ["file"]
    assert spec["paths"]["/me"]["delete"]["requestBody"]["required"] is True
    assert "required" not in spec["paths"]["/users/{user_id}"]["patch"]["requestBody"]


def test_worker_bounds_are_the_deployments_cap(database_url: str, fake_ts, tmp_path: Path) -> None:
    with app_on(database_url, tmp_path / "i", MAX_MODEL_WORKERS=3, **torchserve_settings(fake_ts)) as app:
        schemas = app.test_client().get("/openapi.json").get_json()["components"]["schemas"]

    assert schemas["WorkersIn"]["properties"]["max"]["maximum"] == 3
    assert schemas["WorkersIn"]["properties"]["min"]["maximum"] == 3
    assert schemas["RegisterModelIn"]["properties"]["initial_workers"]["maximum"] == 3


def test_metrics_are_documented_as_text(client) -> None:
    metrics = client.get("/openapi.json").get_json()["paths"]["/metrics"]["get"]["responses"]["200"]

    assert set(metrics["content"]) == {"text/plain"}
    assert client.get("/metrics").headers["Content-Type"].startswith("text/plain")


def test_a_url_over_the_limit_is_a_json_414_and_documented_everywhere(app, client, auth) -> None:
    spec = client.get("/openapi.json").get_json()
    long_query = "x" * 5000
    headers = auth.headers("alice")

    stats = client.get(f"/me/history?q={long_query}", headers=headers)
    forward = client.post(f"/forward?{long_query}", headers=headers)

    assert all("414" in op["responses"] for _, _, op in _operations(spec))
    for response in (stats, forward):
        assert response.status_code == 414, response.get_data(as_text=True)[:200]
        assert response.get_json()["error"] == "uri_too_long"
    admin = auth.admin_headers()
    rows = client.get("/history", headers=admin).get_json()["items"]
    assert [row["status_code"] for row in rows] == [414]  # /forward's refusal has its history row


def test_docs_pages_load_only_vendored_files(client) -> None:
    """Swagger UI and ReDoc work offline: every script, style and icon they name is served here."""
    for path in ("/docs", "/redoc"):
        page = client.get(path).get_data(as_text=True)
        assets = re.findall(r'(?:src|href)="([^"]+)"', page)

        assert assets, path
        for asset in assets:
            assert asset.startswith("/"), (path, asset)  # nothing from another host
            assert client.get(asset).status_code == 200, asset


def test_vendored_libraries_carry_licence_and_version() -> None:
    vendor = Path(__file__).resolve().parents[2] / "control_api" / "static" / "vendor"
    for name in ("swagger-ui", "redoc", "chart.js"):
        files = {p.name for p in (vendor / name).iterdir()}
        assert "VERSION" in files and any(f.startswith("LICENSE") for f in files), name
