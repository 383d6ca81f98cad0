"""The control API in front of the REAL TorchServe (session fixture ``torchserve``) and our real handler."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from PIL import Image

from control_api.extensions import torchserve as torchserve_ext
from control_api.torchserve.keys import Key
from launcher.torchserve_process import start as start_torchserve
from tests.control_api.conftest import ADMIN_TOKEN, PASSWORD, AuthActions, app_on, torchserve_settings


def image_bytes(fmt: str, size: tuple[int, int] = (300, 200), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128 if mode != "RGB" else (40, 120, 200)).save(buf, format=fmt)
    return buf.getvalue()


def post_forward(client, headers: dict[str, str], files: list[bytes], query: str = "", **form: Any):
    data: dict[str, Any] = {"file": [(io.BytesIO(f), f"f{i}") for i, f in enumerate(files)], **form}
    return client.post(f"/forward{query}", data=data, headers=headers, content_type="multipart/form-data")


def test_whole_flow(live_app, small_jpeg: bytes) -> None:
    """register -> token -> forward (one, several) -> history -> stats -> delete, all through the API."""
    client = live_app.test_client()
    assert client.get("/health").get_json() == {"status": "ok", "database": "ok", "torchserve": "ok"}
    assert client.post("/register", json={"username": "alice", "password": PASSWORD}).status_code == 201
    token = client.post("/token", data={"username": "alice", "password": PASSWORD}).get_json()["access_token"]
    user = {"Authorization": f"Bearer {token}"}

    one = post_forward(client, user, [small_jpeg], query="?top_k=3")
    assert one.status_code == 200, one.get_json()
    body = one.get_json()
    assert body["model"]["name"] == "resnet50" and body["model"]["version"]
    assert [p["probability"] for p in body["predictions"]] == sorted(
        (p["probability"] for p in body["predictions"]), reverse=True
    )
    assert len(body["predictions"]) == 3
    assert body["image"] == {"width": 320, "height": 240, "format": "JPEG", "size_bytes": len(small_jpeg)}

    batch = post_forward(client, user, [small_jpeg, image_bytes("PNG"), b"not an image"], top_k="2")
    assert batch.status_code == 200, batch.get_json()
    results = batch.get_json()["results"]
    assert [r.get("image", {}).get("format") for r in results] == ["JPEG", "PNG", None]
    assert results[2]["status"] == 415 and results[2]["error"] == "unsupported_image"

    admin = AuthActions(client).admin_headers()
    listed = client.get("/history", headers=admin).get_json()
    assert listed["total"] == 2
    newest, oldest = listed["items"]
    assert newest["request_type"] == "forward_batch" and oldest["image_width"] == 320
    assert oldest["result"]["label"] == body["predictions"][0]["label"]
    stats = client.get("/stats", headers=admin).get_json()
    assert stats["total_requests"] == 2 and stats["status_codes"] == {"200": 2}
    assert stats["processing_time_ms"]["p50"] > 0
    deleted = client.delete("/history", headers={**admin, "X-Admin-Token": ADMIN_TOKEN})
    assert deleted.get_json() == {"deleted": 2}


@pytest.mark.parametrize(
    ("make", "query", "status", "slug"),
    [
        (lambda: b"plain text", "", 415, "unsupported_image"),
        (lambda: image_bytes("JPEG")[:300], "", 415, "unsupported_image"),  # truncated
        (lambda: image_bytes("PNG", (8200, 8200), mode="1"), "", 422, "image_too_large"),  # 67 MP
        (lambda: image_bytes("JPEG"), "?model=nosuchmodel", 404, "model_not_found"),
        (lambda: image_bytes("JPEG"), "?version=99.0", 404, "model_not_found"),
        (lambda: image_bytes("JPEG"), "?top_k=101", 422, "validation_error"),
    ],
)
def test_real_errors(live_app, make, query: str, status: int, slug: str) -> None:
    client = live_app.test_client()
    response = post_forward(client, AuthActions(client).headers(), [make()], query=query)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"] == slug


def test_top_k_100_and_formats(live_app) -> None:
    client = live_app.test_client()
    headers = AuthActions(client).headers()
    for fmt in ("JPEG", "PNG", "WEBP", "BMP", "GIF"):
        response = post_forward(
            client, headers, [image_bytes(fmt, mode="RGB" if fmt != "GIF" else "P")], top_k="100"
        )
        assert response.status_code == 200, (fmt, response.get_json())
        assert len(response.get_json()["predictions"]) == 100


def test_expired_torchserve_key_is_renewed(torchserve_model_store: Path, tmp_path: Path) -> None:
    """A TorchServe whose keys live one minute: past expiry, /forward still works (renew + retry once).

    One database is enough here (the key logic does not touch it), and the test waits 65 s.
    """
    ts = start_torchserve(
        tmp_path / "ts_expiring", torchserve_model_store, overrides={"token_expiration_min": 1}
    )
    try:
        with app_on(f"sqlite:///{tmp_path / 'api.db'}", tmp_path / "i", **torchserve_settings(ts)) as app:
            client = app.test_client()
            headers = AuthActions(client).headers()
            image = image_bytes("JPEG")
            assert post_forward(client, headers, [image]).status_code == 200
            first_key = ts.keys()["inference"]
            time.sleep(65)
            # The key file says the key has expired, and TorchServe agrees:
            stale = requests.post(
                f"{ts.inference_url}/predictions/resnet50",
                data=image,
                timeout=30,
                headers={"Authorization": f"Bearer {first_key}"},
            )
            assert stale.status_code == 400 and stale.json()["type"] == "InvalidKeyException"

            # Reactive path: ignore the file's expiry time, so TorchServe's 400 triggers renew + retry.
            seen: list[int] = []
            with app.app_context():
                client_obj = torchserve_ext.client
            original_send = client_obj._send

            def spying_send(*args: Any, **kwargs: Any):
                result = original_send(*args, **kwargs)
                seen.append(result.status)
                return result

            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(Key, "expired", lambda self: False)
                mp.setattr(client_obj, "_send", spying_send)
                response = post_forward(client, headers, [image])
            assert response.status_code == 200, response.get_json()
            assert seen == [400, 200, 200]  # rejected, token API, retried
            second_key = ts.keys()["inference"]
            assert second_key != first_key
            assert post_forward(client, headers, [image]).status_code == 200
            assert ts.keys()["inference"] == second_key  # no needless renewal
    finally:
        ts.stop()
