"""RBAC on every endpoint, enumerated from app.url_map so that a new endpoint cannot be forgotten.

Anything not listed as public or as a user endpoint must be admin-only: anonymous 401, user 403, admin not.
Runs in front of the real session TorchServe, with requests that change nothing there (unknown models).
"""

from __future__ import annotations

import io
import re
from typing import Any

from PIL import Image

from tests.control_api.conftest import ADMIN_TOKEN, PASSWORD, AuthActions

# (rule, method) pairs anyone may call.
PUBLIC = {
    ("/register", "POST"),
    ("/token", "POST"),
    ("/health", "GET"),
    ("/metrics", "GET"),  # open unless METRICS_TOKEN is set (see ops/test_observability.py)
    ("/openapi.json", "GET"),
    ("/docs", "GET"),
    ("/docs/oauth2-redirect", "GET"),
}
# Any signed-in user.
USER = {
    ("/forward", "POST"),
    ("/me", "GET"),
    ("/me", "DELETE"),
    ("/me/history", "GET"),
    ("/me/usage", "GET"),
    ("/me/password", "POST"),
    ("/models", "GET"),  # reduced for users (model_admin/test_rollout.py)
}
SAMPLE_ARGS = {
    "name": "nosuchmodel",
    "version": "9.9",
    "filename": "x",
    "file_name": "nosuch.mar",
    "user_id": "999999",
}
PLACEHOLDER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")  # <name>, <path:name>, <int(max=9):name>


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (1, 2, 3)).save(buf, format="JPEG")
    return buf.getvalue()


def _endpoints(app) -> list[tuple[str, str, str]]:
    """(rule, method, url) for every route except the static files."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        url = PLACEHOLDER.sub(lambda match: SAMPLE_ARGS[match.group(1)], rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.rule, method, url))
    return found


def _call(client, method: str, url: str, headers: dict[str, str]) -> Any:
    headers = {**headers, "X-Admin-Token": ADMIN_TOKEN}  # the admin token alone must never be enough
    if url == "/forward":
        data = {"file": (io.BytesIO(_jpeg()), "a.jpg")}
        return client.post(url, data=data, headers=headers, content_type="multipart/form-data")
    bodies = {
        ("POST", "/models"): {"archive": "nosuch.mar"},
        ("PUT", "/models/nosuchmodel/9.9/workers"): {"min": 1, "max": 1},
        ("POST", "/register"): {"username": "newcomer", "password": "long enough pw"},
        ("POST", "/token"): {"username": "alice", "password": PASSWORD},
        ("PATCH", "/users/999999"): {"disabled": True},
        ("POST", "/me/password"): {"current_password": PASSWORD},  # 422: changes nothing
    }
    return client.open(url, method=method, json=bodies.get((method, url)), headers=headers)


def test_every_endpoint_enforces_its_role(live_app) -> None:
    client = live_app.test_client()
    auth = AuthActions(client)
    callers = {"anonymous": {}, "user": auth.headers("alice"), "admin": auth.admin_headers()}
    endpoints = _endpoints(live_app)
    seen = {(rule, method) for rule, method, _ in endpoints}
    assert seen >= PUBLIC and seen >= USER, "a public or user endpoint disappeared: update the lists"
    admin_only = seen - PUBLIC - USER
    assert {("/history", "GET"), ("/history", "DELETE"), ("/stats", "GET"), ("/audit", "GET")} <= admin_only
    assert {
        ("/models", "POST"),
        ("/models/<name>", "GET"),
        ("/models/<name>/<version>", "DELETE"),
    } <= admin_only
    assert {("/models/archives", "POST"), ("/models/<name>/rollout", "PUT")} <= admin_only
    assert {("/users", "GET"), ("/audit", "GET")} <= admin_only
    assert {method for rule, method in admin_only if rule.startswith("/users/")} == {"GET", "PATCH", "DELETE"}

    problems = []
    for rule, method, url in endpoints:
        got = {who: _call(client, method, url, headers).status_code for who, headers in callers.items()}
        if (rule, method) in PUBLIC:
            ok = all(status not in (401, 403) for status in got.values())
        elif (rule, method) in USER:
            ok = got["anonymous"] == 401 and got["user"] not in (401, 403) and got["admin"] not in (401, 403)
        else:
            ok = got["anonymous"] == 401 and got["user"] == 403 and got["admin"] not in (401, 403)
        if not ok or got["admin"] >= 500:
            problems.append((method, rule, got))
    assert not problems, problems
