"""OpenAPI at /openapi.json and Swagger UI at /docs, generated from the validating schemas."""

from __future__ import annotations

import re
from pathlib import Path


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
