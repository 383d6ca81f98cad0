"""The API documentation pages, offline: Swagger UI at ``/docs`` (APIFlask's) and ReDoc at ``/redoc``, both
loading their scripts, styles and icon from ``control_api/static/vendor/`` instead of a CDN."""

from __future__ import annotations

from apiflask import APIBlueprint, APIFlask
from apiflask.ui_templates import redoc_template
from flask import render_template_string

from .openapi import TITLE, VERSION

VENDOR = "/static/vendor"

bp = APIBlueprint("api_docs", __name__, enable_openapi=False)


def configure(app: APIFlask) -> None:
    """Point APIFlask's documentation pages at the vendored files (before the first request)."""
    app.config.update(
        SWAGGER_UI_CSS=f"{VENDOR}/swagger-ui/swagger-ui.css",
        SWAGGER_UI_BUNDLE_JS=f"{VENDOR}/swagger-ui/swagger-ui-bundle.js",
        SWAGGER_UI_STANDALONE_PRESET_JS=f"{VENDOR}/swagger-ui/swagger-ui-standalone-preset.js",
        REDOC_STANDALONE_JS=f"{VENDOR}/redoc/redoc.standalone.js",
        REDOC_USE_GOOGLE_FONT=False,
        DOCS_FAVICON=f"{VENDOR}/swagger-ui/favicon-32x32.png",
    )


@bp.get("/redoc")
def redoc() -> str:
    """ReDoc, reading /openapi.json."""
    return render_template_string(redoc_template, title=TITLE, version=VERSION)
