"""The OpenAPI document's shared parts: the Bearer scheme, the error shape and the description."""

from __future__ import annotations

from apiflask import APIFlask

from .errors import ERROR_SCHEMA

TITLE = "Image classification control API"
VERSION = "1.0.0"


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
