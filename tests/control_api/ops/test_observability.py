"""Request IDs (kept or generated; to TorchServe, history, logs, response), /metrics, JSON logs."""

from __future__ import annotations

import io
import json
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families

from control_api.extensions import db
from control_api.ops.logs import JsonFormatter, RequestIdFilter, make_handler
from control_api.tables import History
from tests.control_api.conftest import AuthActions, app_on, torchserve_settings


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (9, 9, 9)).save(buf, format="PNG")
    return buf.getvalue()


def forward(client, headers: dict[str, str], query: str = "", data: bytes | None = None) -> Any:
    files = {"file": (io.BytesIO(png() if data is None else data), "a.png")}
    return client.post(f"/forward{query}", data=files, headers=headers, content_type="multipart/form-data")


def rows(app) -> list[History]:
    with app.app_context():
        found = list(db.session.scalars(sa.select(History).order_by(History.id)).all())
        db.session.expunge_all()
        return found


# --- Request IDs. ------------------------------------------------------------------------------------------


def test_client_request_id_is_kept_end_to_end(app, client, auth: AuthActions, fake_ts) -> None:
    headers = {**auth.headers(), "X-Request-ID": "client-42.a_b:c"}
    response = forward(client, headers)
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "client-42.a_b:c"
    assert response.get_json()["request_id"] == "client-42.a_b:c"
    assert fake_ts.requests[-1]["request_id"] == "client-42.a_b:c"  # sent to TorchServe
    [row] = rows(app)
    assert row.request_id == "client-42.a_b:c"
    found = client.get("/history?request_id=client-42.a_b:c", headers=auth.admin_headers()).get_json()
    assert [item["id"] for item in found["items"]] == [row.id]


@pytest.mark.parametrize(
    "given",
    [None, "", "x" * 65, "has space", "semi;colon", 'quote"d', "<script>", "ünïcode", "a/b", "a,b"],
)
def test_insane_or_missing_request_id_is_replaced(app, client, auth: AuthActions, fake_ts, given) -> None:
    headers = auth.headers()
    if given is not None:
        headers["X-Request-ID"] = given
    response = forward(client, headers)
    generated = response.headers["X-Request-ID"]
    assert generated != given and len(generated) == 32 and int(generated, 16) >= 0
    assert response.get_json()["request_id"] == generated == fake_ts.requests[-1]["request_id"]
    assert rows(app)[-1].request_id == generated


def test_every_response_has_a_request_id(client) -> None:
    for response in (client.get("/health"), client.get("/nope"), client.post("/token", json={})):
        assert len(response.headers["X-Request-ID"]) == 32
    assert client.get("/health", headers={"X-Request-ID": "abc"}).headers["X-Request-ID"] == "abc"


# --- Metrics. ----------------------------------------------------------------------------------------------


def scrape(
    client, headers: dict[str, str] | None = None
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.get_data(as_text=True)[:200]
    assert response.content_type.startswith("text/plain")
    values = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_images_and_latency(app, client, auth: AuthActions) -> None:
    headers = auth.headers()
    before = scrape(client)
    assert forward(client, headers).status_code == 200
    assert forward(client, headers, query="?model=nosuchmodel").status_code == 404
    assert forward(client, headers, data=b"not an image").status_code == 415
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("api_requests_total", endpoint="/forward", method="POST", status="200") == 1
    assert delta("api_requests_total", endpoint="/forward", method="POST", status="404") == 1
    assert delta("api_requests_total", endpoint="/metrics", method="GET", status="200") == 1
    assert delta("api_request_duration_seconds_count", endpoint="/forward") == 3
    assert delta("api_request_duration_seconds_bucket", endpoint="/forward", le="+Inf") == 3
    assert delta("api_forward_images_total", model="resnet50", version="1.0", status="200") == 1
    assert delta("api_forward_images_total", model="resnet50", version="default", status="415") == 1
    assert delta("api_forward_images_total", model="unknown", version="unknown", status="404") == 1
    assert delta("api_upstream_duration_seconds_count", model="resnet50", version="1.0") == 1
    assert delta("api_upstream_duration_seconds_sum", model="resnet50", version="1.0") > 0
    # Invented model names never become label values.
    assert not any(dict(labels).get("model") == "nosuchmodel" for _, labels in after)
    # Unmatched paths share one label.
    client.get("/no/such/path/42")
    assert value(scrape(client), "api_requests_total", endpoint="unmatched", method="GET", status="404") >= 1


def test_metrics_count_upstream_and_database_errors(database_url: str, fake_ts, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = {**torchserve_settings(fake_ts), "TORCHSERVE_INFERENCE_URL": dead}
    with app_on(database_url, tmp_path / "i", **settings) as app:
        client = app.test_client()
        headers = AuthActions(client).headers()
        before = scrape(client)
        assert forward(client, headers).status_code == 503
        assert forward(client, headers, query="?model=invented1&version=v9").status_code == 503
        with app.app_context():
            db.session.execute(sa.text("ALTER TABLE history_rollup RENAME TO history_rollup_away"))
            db.session.commit()
        try:
            assert forward(client, headers).status_code == 503
        finally:
            with app.app_context():
                db.session.execute(sa.text("ALTER TABLE history_rollup_away RENAME TO history_rollup"))
                db.session.commit()
        after = scrape(client)
    assert (
        value(after, "api_upstream_errors_total", kind="unavailable")
        - value(before, "api_upstream_errors_total", kind="unavailable")
        >= 2
    )
    assert value(after, "api_db_errors_total") - value(before, "api_db_errors_total") >= 1
    # TorchServe never confirmed those names: they are not label values.
    assert not any({"invented1", "v9"} & set(dict(labels).values()) for _, labels in after)


def test_metrics_token(database_url: str, fake_ts, tmp_path: Path) -> None:
    with app_on(
        database_url, tmp_path / "i", METRICS_TOKEN="scrape-me", **torchserve_settings(fake_ts)
    ) as app:
        client = app.test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        jwt = AuthActions(client).admin_headers()  # an admin JWT is not the scrape token
        assert client.get("/metrics", headers=jwt).status_code == 401
        assert client.get("/metrics").get_json()["error"] == "invalid_metrics_token"
        scrape(client, {"Authorization": "Bearer scrape-me"})


# --- Logs. -------------------------------------------------------------------------------------------------


@contextmanager
def captured(log_format: str) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = make_handler(log_format, stream)
    logger = logging.getLogger("control_api")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def test_json_access_log_carries_the_request_id(client, auth: AuthActions) -> None:
    headers = {**auth.headers(), "X-Request-ID": "trace-me-1"}
    with captured("json") as stream:
        assert forward(client, headers).status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    access = [line for line in lines if line["logger"] == "control_api.access"]
    [entry] = [line for line in access if line.get("path") == "/forward"]
    assert entry["request_id"] == "trace-me-1" and entry["status"] == 200 and entry["method"] == "POST"
    assert entry["user"] == "alice" and entry["duration_ms"] > 0 and entry["level"] == "INFO"
    assert entry["ts"].endswith("+00:00") and entry["message"].startswith("POST /forward 200")


def test_text_log_carries_the_request_id(client) -> None:
    with captured("text") as stream:
        client.get("/health", headers={"X-Request-ID": "plain-7"})
    assert "[plain-7] GET /health 200" in stream.getvalue()


def test_json_formatter_outside_requests_and_with_exceptions() -> None:
    record = logging.LogRecord("x.y", logging.ERROR, __file__, 1, "boom %s", ("here",), None)
    try:
        raise ValueError("bad")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    record.custom = {"k": 1}
    RequestIdFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "boom here" and line["level"] == "ERROR" and line["logger"] == "x.y"
    assert "ValueError: bad" in line["exc_info"] and line["custom"] == {"k": 1}
    assert "request_id" not in line  # none outside a request
