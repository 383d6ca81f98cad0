"""The Schemathesis configuration for a document: what each operation may answer to valid-looking input.

Schemathesis' ``positive_data_acceptance`` check expects a request that fits the schema to be accepted
(2xx, or 401/403/404/409/429). An operation whose ``x-input-rules`` (control_api/openapi.py) name rules
JSON Schema cannot state may also answer the statuses those rules give. ``negative_data_rejection`` also
takes 413 and 414 as rejections: a fuzzed URL or body can be over the size limits (documented on every
operation), and then that is what refuses it.

Schemathesis' error feedback (it reads 422 bodies to tighten its generators) is off: its marshmallow
parser takes the ``details`` key of our error shape for a body field, and then generates bodies with a
``details`` object it believes valid. The checks are unaffected.
"""

from __future__ import annotations

import json
from typing import Any

# Schemathesis' own defaults for the checks.
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]
# A request too large to read is refused before its content is looked at: that is a rejection too.
TOO_LARGE = ["413", "414"]
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def schemathesis_toml(spec: dict[str, Any]) -> str:
    """The config file's text: one [[operations]] entry per operation that declares input rules."""
    rejected = ", ".join(_toml_string(s) for s in [*REJECTED, *TOO_LARGE])
    blocks: list[str] = [
        "[phases.fuzzing.error-feedback]\nenabled = false\n",
        f"[checks.negative_data_rejection]\nexpected-statuses = [{rejected}]\n",
    ]
    for path, operations in sorted(spec.get("paths", {}).items()):
        for method, operation in sorted(operations.items()):
            if method not in METHODS or not isinstance(operation, dict):
                continue
            rules = operation.get("x-input-rules") or []
            statuses = sorted({str(rule["status"]) for rule in rules} - set(ACCEPTED))
            if not statuses:
                continue
            expected = ", ".join(_toml_string(s) for s in [*ACCEPTED, *statuses])
            blocks.append(
                "[[operations]]\n"
                f"include-path = {_toml_string(path)}\n"
                f"include-method = {_toml_string(method.upper())}\n"
                f"checks.positive_data_acceptance.expected-statuses = [{expected}]\n"
            )
    return "\n".join(blocks)
