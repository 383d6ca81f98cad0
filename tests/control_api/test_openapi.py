"""OpenAPI at /openapi.json and Swagger UI at /docs, generated from the validating schemas."""

from __future__ import annotations


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
