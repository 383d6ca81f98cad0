"""/forward against the fake TorchServe: every error code, batching, key renewal, and its history rows."""

from __future__ import annotations

import io
import socket
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from control_api.extensions import db
from control_api.tables import History
from tests.control_api.conftest import AuthActions, app_on, assert_error, torchserve_settings


def png(width: int = 64, height: int = 48) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def forward(client, headers: dict[str, str] | None, *files: bytes, query: str = "", **form: Any):
    data: dict[str, Any] = dict(form)
    if files:
        data["file"] = [(io.BytesIO(f), f"image{i}.png") for i, f in enumerate(files)]
    return client.post(
        f"/forward{query}", data=data, headers=headers or {}, content_type="multipart/form-data"
    )


def history(app) -> list[History]:
    with app.app_context():
        rows = db.session.scalars(sa.select(History).order_by(History.id)).all()
        db.session.expunge_all()
        return list(rows)


def test_single_image(app, client, auth: AuthActions) -> None:
    image = png(64, 48)
    response = forward(client, auth.headers(), image, query="?top_k=3")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"request_id", "model", "predictions", "image", "processing_time_ms"}
    assert body["model"] == {"name": "resnet50", "version": "1.0"}
    assert len(body["predictions"]) == 3
    assert set(body["predictions"][0]) == {"class_id", "label", "probability"}
    assert body["image"] == {"width": 64, "height": 48, "format": "PNG", "size_bytes": len(image)}
    assert response.headers["X-Request-ID"] == body["request_id"]
    [row] = history(app)
    assert row.status_code == 200 and row.username == "alice" and row.request_type == "forward"
    assert row.request_id == body["request_id"]
    assert (row.model_name, row.model_version) == ("resnet50", "1.0")
    assert (row.image_width, row.image_height, row.input_data_size) == (64, 48, len(image))
    assert row.result == body["predictions"][0]
    assert row.upstream_time is not None and row.processing_time >= row.upstream_time > 0
    assert row.error_message is None
    assert row.file_count == 1


def test_top_k_from_form_and_default(client, auth: AuthActions, fake_ts) -> None:
    headers = auth.headers()
    assert len(forward(client, headers, png(), top_k="7").get_json()["predictions"]) == 7
    image = png()
    assert len(forward(client, headers, image).get_json()["predictions"]) == 5
    # The image goes upstream raw, top_k in a header (no multipart for TorchServe's frontend to decode).
    sent = fake_ts.requests[-1]
    assert (sent["content_type"], sent["top_k_header"], sent["form"]) == ("application/octet-stream", "5", {})
    assert sent["size"] == len(image)


@pytest.mark.parametrize(
    "query", ["?top_k=0", "?top_k=101", "?top_k=abc", "?top_k=1.5", "?model=../etc", "?version=/x"]
)
def test_bad_parameters_are_422(app, client, auth: AuthActions, query: str) -> None:
    assert_error(forward(client, auth.headers(), png(), query=query), 422, "validation_error")
    assert [r.status_code for r in history(app)] == [422]


def test_unknown_form_field_is_422(client, auth: AuthActions) -> None:
    assert_error(forward(client, auth.headers(), png(), colour="red"), 422)


def test_no_file_is_400(app, client, auth: AuthActions) -> None:
    headers = auth.headers()
    assert_error(forward(client, headers), 400, "no_file")
    assert_error(client.post("/forward", json={"file": "x"}, headers=headers), 400, "no_file")
    assert_error(
        client.post("/forward", data=b"\x89PNG", headers=headers, content_type="image/png"), 400, "no_file"
    )
    assert [r.status_code for r in history(app)] == [400, 400, 400]
    assert all(r.username == "alice" for r in history(app))


def test_unauthenticated_forward_is_counted_not_recorded(app, client) -> None:
    from prometheus_client import REGISTRY

    def refused(slug: str) -> float:
        return REGISTRY.get_sample_value("api_forward_anonymous_total", {"error": slug}) or 0.0

    before = refused("missing_token"), refused("invalid_token")

    assert_error(forward(client, None, png()), 401, "missing_token")
    assert_error(forward(client, {"Authorization": "Bearer nope"}, png()), 401, "invalid_token")

    assert history(app) == []
    assert (refused("missing_token"), refused("invalid_token")) == (before[0] + 1, before[1] + 1)


def test_not_an_image_is_415(app, client, auth: AuthActions) -> None:
    body = assert_error(
        forward(client, auth.headers(), b"this is text, not pixels"), 415, "unsupported_image"
    )
    assert body["message"]
    [row] = history(app)
    assert row.status_code == 415 and row.input_data_size == 24 and row.result is None


def test_empty_file_is_400(client, auth: AuthActions, fake_ts) -> None:
    assert_error(forward(client, auth.headers(), b""), 400, "empty_input")
    assert fake_ts.requests == []  # not sent upstream


@pytest.mark.parametrize(
    ("query", "slug"), [("?model=nosuch", "model_not_found"), ("?version=9.9", "model_not_found")]
)
def test_unknown_model_or_version_is_404(app, client, auth: AuthActions, query: str, slug: str) -> None:
    assert_error(forward(client, auth.headers(), png(), query=query), 404, slug)
    [row] = history(app)
    assert row.status_code == 404
    # Names TorchServe does not know are not kept: clients cannot grow the stats rollup with them.
    expected = ("unknown", None) if "model" in query else ("unknown", "unknown")
    assert (row.model_name, row.model_version) == expected


class ExplodingStream(io.RawIOBase):
    """A request body that must never be read."""

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("the upload was read")

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the upload was read")


def test_413_from_content_length_before_reading_the_body(app, client, auth: AuthActions) -> None:
    response = client.post(
        "/forward",
        headers={**auth.headers(), "Content-Length": str(25 * 1024 * 1024)},
        content_type="multipart/form-data; boundary=x",
        environ_overrides={"wsgi.input": ExplodingStream(), "CONTENT_LENGTH": str(25 * 1024 * 1024)},
    )
    assert_error(response, 413, "payload_too_large")
    [row] = history(app)
    assert row.status_code == 413 and row.input_data_size == 25 * 1024 * 1024 and row.username == "alice"


def test_413_for_a_chunked_body_over_the_limit(database_url, fake_ts, tmp_path) -> None:
    """No Content-Length (chunked, as gunicorn presents it): the limit cuts the stream while parsing."""
    with app_on(database_url, tmp_path / "i", MAX_UPLOAD_MB=1, **torchserve_settings(fake_ts)) as app:
        client = app.test_client()
        boundary = "bound"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                "Content-Type: image/png\r\n\r\n"
            ).encode()
            + b"\0" * (3 * 1024 * 1024)
            + f"\r\n--{boundary}--\r\n".encode()
        )
        response = client.post(
            "/forward",
            headers=AuthActions(client).headers(),
            content_type=f"multipart/form-data; boundary={boundary}",
            environ_overrides={
                "wsgi.input": io.BytesIO(body),
                "wsgi.input_terminated": True,
                "CONTENT_LENGTH": "",
            },
        )
        assert_error(response, 413)
        assert [r.status_code for r in history(app)] == [413]


def test_too_many_files_is_413(database_url, fake_ts, tmp_path) -> None:
    with app_on(database_url, tmp_path / "i", MAX_FILES_PER_REQUEST=2, **torchserve_settings(fake_ts)) as app:
        client = app.test_client()
        assert_error(
            forward(client, AuthActions(client).headers(), png(), png(), png()), 413, "too_many_files"
        )


def test_batch_keeps_order_and_reports_per_file_errors(app, client, auth: AuthActions, fake_ts) -> None:
    images = [png(10, 20), b"garbage", png(30, 40), b""]
    response = forward(client, auth.headers(), *images, top_k="2")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert set(body) == {"request_id", "results", "processing_time_ms"}
    results = body["results"]
    assert [r.get("image", {}).get("width") for r in results] == [10, None, 30, None]
    assert results[1] == {"error": "unsupported_image", "message": results[1]["message"], "status": 415}
    assert results[3]["status"] == 400 and results[3]["error"] == "empty_input"
    assert results[0]["request_id"] == body["request_id"] and len(results[0]["predictions"]) == 2
    assert len(fake_ts.requests) == 3
    [row] = history(app)
    assert row.request_type == "forward_batch" and row.file_count == 4 and row.status_code == 200
    assert row.input_data_size == sum(len(i) for i in images)
    assert row.result is not None and row.result[1] == {"error": "unsupported_image", "status": 415}


def test_batch_with_unknown_model_is_one_404(client, auth: AuthActions) -> None:
    assert_error(forward(client, auth.headers(), png(), png(), query="?model=nosuch"), 404, "model_not_found")


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_torchserve_down_is_503_with_retry_after(database_url, fake_ts, tmp_path) -> None:
    dead = f"http://127.0.0.1:{_dead_port()}"
    settings = {**torchserve_settings(fake_ts), "TORCHSERVE_INFERENCE_URL": dead}
    with app_on(database_url, tmp_path / "i", **settings) as app:
        client = app.test_client()
        headers = AuthActions(client).headers()
        response = forward(client, headers, png())
        assert_error(response, 503, "torchserve_unavailable")
        assert response.headers["Retry-After"] == "5"
        batch = forward(client, headers, png(), png())
        assert_error(batch, 503)
        assert batch.headers["Retry-After"] == "5"
        assert [r.status_code for r in history(app)] == [503, 503]
        health = client.get("/health")
        assert health.status_code == 503
        assert health.get_json()["torchserve"] == "unavailable" and health.get_json()["database"] == "ok"


def test_torchserve_too_slow_is_504(database_url, fake_ts, tmp_path) -> None:
    fake_ts.delay_s = 1.5
    with app_on(database_url, tmp_path / "i", TORCHSERVE_TIMEOUT=0.3, **torchserve_settings(fake_ts)) as app:
        client = app.test_client()
        assert_error(forward(client, AuthActions(client).headers(), png()), 504, "torchserve_timeout")
        [row] = history(app)
        assert row.status_code == 504 and row.error_message


def test_rejected_key_is_renewed_and_the_call_retried(app, client, auth: AuthActions, fake_ts) -> None:
    headers = auth.headers()
    assert forward(client, headers, png()).status_code == 200
    old_key = fake_ts.keys["inference"]
    fake_ts.expire_inference_key()  # TorchServe says expired, though the file still claims it is valid
    response = forward(client, headers, png())
    assert response.status_code == 200, response.get_json()
    assert fake_ts.renewals == 1 and fake_ts.keys["inference"] != old_key
    assert len(fake_ts.requests) == 3  # the first call, the rejected one, the retry
    assert forward(client, headers, png()).status_code == 200 and fake_ts.renewals == 1


def test_key_the_file_says_expired_is_renewed_before_the_call(
    app, client, auth: AuthActions, fake_ts
) -> None:
    fake_ts.expire_inference_key(in_file_too=True)
    assert forward(client, auth.headers(), png()).status_code == 200
    assert fake_ts.renewals == 1 and len(fake_ts.requests) == 1


def test_renewal_refused_is_502_not_500(app, client, auth: AuthActions, fake_ts) -> None:
    fake_ts.fail_renewals = True
    fake_ts.expire_inference_key()
    assert_error(forward(client, auth.headers(), png()), 502, "upstream_error")
    assert history(app)[0].status_code == 502


def test_database_down_is_503_not_500(app, client, auth: AuthActions) -> None:
    headers = auth.headers()

    def rename(old: str, new: str) -> None:
        with app.app_context():
            db.session.execute(sa.text(f"ALTER TABLE {old} RENAME TO {new}"))
            db.session.commit()

    rename("history_rollup", "history_rollup_away")
    try:
        assert_error(forward(client, headers, png()), 503, "database_unavailable")
    finally:
        rename("history_rollup_away", "history_rollup")
