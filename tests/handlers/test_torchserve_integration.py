"""Our handler inside a real TorchServe, over real HTTP: input forms, batching, errors, auth, limits."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pytest
import requests

import build_archive
from launcher.torchserve_process import TorchServe
from tests.handlers.conftest import registered

TIMEOUT = 60
# Binary, so the handler cannot mistake it for base64 text (that would be 400 invalid_input instead).
NOT_AN_IMAGE = b"\x00\x01\x02 definitely not an image \xfe\xff"


def predict_url(ts: TorchServe, model: str | None = None) -> str:
    return f"{ts.inference_url}/predictions/{model or ts.model_name}"


def post(ts: TorchServe, model: str | None = None, **kwargs: Any) -> requests.Response:
    """POST to the model with the inference key (plus any ``headers`` given)."""
    headers = {**ts.headers(), **kwargs.pop("headers", {})}
    return requests.post(predict_url(ts, model), headers=headers, timeout=TIMEOUT, **kwargs)


def assert_prediction(
    r: requests.Response, top_k: int = 5, size: tuple[int, int] = (320, 240), model: str = "resnet50"
) -> None:
    """The success contract (see the handler I/O contract)."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": model, "version": "1.0-untrained", "precision": "fp32"}
    preds = body["predictions"]
    assert len(preds) == top_k
    probabilities = [p["probability"] for p in preds]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)
    assert len({p["class_id"] for p in preds}) == top_k
    assert all(0 <= p["class_id"] < 1000 and isinstance(p["label"], str) and p["label"] for p in preds)
    assert (body["image"]["width"], body["image"]["height"]) == size
    assert body["timings_ms"]["preprocess"] >= 0 and body["timings_ms"]["inference"] >= 0


def assert_error(r: requests.Response, status: int, slug: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == slug and isinstance(body["message"], str) and body["message"]


def png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, format="PNG")
    return buf.getvalue()


# --- Input forms ----------------------------------------------------------------------------------------


def test_raw_body(torchserve: TorchServe, small_jpeg: bytes) -> None:
    r = post(torchserve, data=small_jpeg, headers={"Content-Type": "application/octet-stream"})
    assert_prediction(r)
    assert r.json()["image"]["format"] == "JPEG"


def test_put_body_like_curl_upload_file(torchserve: TorchServe, small_jpeg: bytes) -> None:
    """`curl -T image.jpg` sends a PUT."""
    r = requests.put(predict_url(torchserve), data=small_jpeg, headers=torchserve.headers(), timeout=TIMEOUT)
    assert_prediction(r)


def test_multipart_file_part_and_top_k_field(torchserve: TorchServe, small_jpeg: bytes) -> None:
    files = {"file": ("cat.jpg", small_jpeg, "image/jpeg")}
    assert_prediction(post(torchserve, files=files))
    assert_prediction(post(torchserve, files=files, data={"top_k": "3"}), top_k=3)


def test_raw_body_with_top_k_header(torchserve: TorchServe, small_jpeg: bytes) -> None:
    """What the control API sends: the image raw, top_k in X-Top-K (a form field would need multipart)."""
    raw = {"Content-Type": "application/octet-stream"}
    assert_prediction(post(torchserve, data=small_jpeg, headers={**raw, "X-Top-K": "3"}), top_k=3)
    assert_error(post(torchserve, data=small_jpeg, headers={**raw, "x-top-k": "0"}), 422, "invalid_top_k")


def test_multipart_data_part(torchserve: TorchServe) -> None:
    r = post(torchserve, files={"data": ("x.png", png_bytes(), "image/png")})
    assert_prediction(r, size=(64, 48))
    assert r.json()["image"]["format"] == "PNG"


def test_base64_text_body(torchserve: TorchServe, small_jpeg: bytes) -> None:
    r = post(torchserve, data=base64.b64encode(small_jpeg), headers={"Content-Type": "text/plain"})
    assert_prediction(r)


def test_top_k_query_string(torchserve: TorchServe, small_jpeg: bytes) -> None:
    # TorchServe 0.12 forwards query parameters to the handler only on the legacy /<model>/predict route
    # (and /invocations); /predictions/<model> drops them, so clients must send top_k as a form field.
    legacy = f"{torchserve.inference_url}/{torchserve.model_name}/predict"
    r = requests.post(
        legacy, params={"top_k": 2}, data=small_jpeg, headers=torchserve.headers(), timeout=TIMEOUT
    )
    assert_prediction(r, top_k=2)
    r = requests.post(
        predict_url(torchserve),
        params={"top_k": 2},
        data=small_jpeg,
        headers=torchserve.headers(),
        timeout=TIMEOUT,
    )
    assert_prediction(r, top_k=5)


# --- Errors, one row at a time and mixed in a batch ------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "slug"),
    [
        ({"data": b""}, 400, "empty_input"),
        ({"data": NOT_AN_IMAGE}, 415, "unsupported_image"),
        ({"data": "!!! not base64 !!!", "headers": {"Content-Type": "text/plain"}}, 400, "invalid_input"),
        (
            {"files": {"file": ("x.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg")}},
            415,
            "unsupported_image",
        ),
    ],
    ids=["empty", "not-an-image", "bad-base64", "truncated-jpeg"],
)
def test_bad_input(torchserve: TorchServe, kwargs: dict[str, Any], status: int, slug: str) -> None:
    assert_error(post(torchserve, **kwargs), status, slug)


@pytest.mark.parametrize("top_k", ["0", "101", "abc"])
def test_invalid_top_k(torchserve: TorchServe, small_jpeg: bytes, top_k: str) -> None:
    r = post(torchserve, files={"file": ("x.jpg", small_jpeg, "image/jpeg")}, data={"top_k": top_k})
    assert_error(r, 422, "invalid_top_k")


@pytest.fixture(scope="module")
def batch_model(torchserve: TorchServe) -> Iterator[str]:
    """The same random ResNet50 with a 3 s maxBatchDelay: 8 concurrent requests reliably form ONE batch."""
    name = "resnet50_batch"
    store = str(torchserve.model_store)
    args = build_archive.parse_args(
        ["--export-path", store, "--model-name", name, "--random-weights", "--no-download",
         "--batch-size", "8", "--max-batch-delay", "3000"]
    )  # fmt: skip
    build_archive.build(args)
    with registered(torchserve, name):
        yield name


def batches_received(ts: TorchServe, model: str) -> int:
    """How many batches the model's worker has received (the worker logs one line per batch)."""
    log = ts.log_dir / "model_log.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    return sum(
        1 for line in text.splitlines() if f"-{model}_" in line and "Backend received inference" in line
    )


def test_mixed_batch_good_rows_succeed_bad_rows_fail_alone(
    torchserve: TorchServe, batch_model: str, small_jpeg: bytes, large_jpeg: bytes
) -> None:
    jpeg_part = {"file": ("x.jpg", small_jpeg, "image/jpeg")}

    def ok(top_k: int = 5, size: tuple[int, int] = (320, 240)) -> Callable[[requests.Response], None]:
        return lambda r: assert_prediction(r, top_k, size, model=batch_model)

    def failed(status: int, slug: str) -> Callable[[requests.Response], None]:
        return lambda r: assert_error(r, status, slug)

    requests_: list[tuple[dict[str, Any], Callable[[requests.Response], None]]] = [
        ({"data": small_jpeg}, ok()),
        ({"files": jpeg_part, "data": {"top_k": "3"}}, ok(top_k=3)),
        ({"data": large_jpeg}, ok(size=(4000, 3000))),
        ({"data": base64.b64encode(small_jpeg), "headers": {"Content-Type": "text/plain"}}, ok()),
        ({"data": NOT_AN_IMAGE}, failed(415, "unsupported_image")),
        ({"data": b""}, failed(400, "empty_input")),
        ({"files": jpeg_part, "data": {"top_k": "0"}}, failed(422, "invalid_top_k")),
        ({"data": png_bytes()}, ok(size=(64, 48))),
    ]
    before = batches_received(torchserve, batch_model)
    barrier = threading.Barrier(len(requests_))

    def send(kwargs: dict[str, Any]) -> requests.Response:
        barrier.wait()
        return post(torchserve, batch_model, **kwargs)

    with ThreadPoolExecutor(len(requests_)) as pool:
        responses = list(pool.map(send, [dict(kwargs) for kwargs, _ in requests_]))
    for r, (_, check) in zip(responses, requests_, strict=True):
        check(r)
    # All eight arrived well within the 3 s delay, so they were one batch of 8.
    deadline = time.monotonic() + 5
    while batches_received(torchserve, batch_model) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert batches_received(torchserve, batch_model) - before == 1


def test_concurrent_requests(torchserve: TorchServe, small_jpeg: bytes) -> None:
    session_headers = torchserve.headers()

    def one(_: int) -> int:
        r = requests.post(predict_url(torchserve), data=small_jpeg, headers=session_headers, timeout=TIMEOUT)
        return r.status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(32)))
    assert codes == [200] * 32


# --- TorchServe's own behaviour we rely on ----------------------------------------------------------------


def test_tokens_are_enforced(torchserve: TorchServe, small_jpeg: bytes) -> None:
    url = predict_url(torchserve)
    keys = torchserve.keys()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Bearer {keys['management']}"}):
        r = requests.post(url, data=small_jpeg, headers=headers, timeout=TIMEOUT)
        # 0.12 answers a missing, wrong or expired key with 400 (not 401).
        assert r.status_code == 400 and r.json()["type"] == "InvalidKeyException", r.text
    r = requests.get(f"{torchserve.management_url}/models", headers=torchserve.headers(), timeout=TIMEOUT)
    assert r.status_code == 400, "the inference key must not open the management API"
    # /ping needs the inference key too; /metrics needs none.
    assert requests.get(f"{torchserve.inference_url}/ping", timeout=TIMEOUT).status_code == 400
    r = requests.get(f"{torchserve.inference_url}/ping", headers=torchserve.headers(), timeout=TIMEOUT)
    assert r.json() == {"status": "Healthy"}


def test_model_description(torchserve: TorchServe) -> None:
    (desc,) = torchserve.describe()
    assert desc["modelVersion"] == "1.0-untrained"
    assert (desc["batchSize"], desc["maxBatchDelay"], desc["minWorkers"], desc["maxWorkers"]) == (8, 20, 1, 1)


def test_prometheus_metrics(torchserve: TorchServe, small_jpeg: bytes) -> None:
    assert post(torchserve, data=small_jpeg).status_code == 200
    r = requests.get(f"{torchserve.metrics_url}/metrics", timeout=TIMEOUT)
    assert r.status_code == 200 and "ts_inference_requests_total" in r.text


def test_request_over_the_size_limit_is_refused(torchserve: TorchServe) -> None:
    r = post(torchserve, data=b"\0" * (22 * 1024 * 1024))
    assert r.status_code == 413


def test_expired_key_and_renewal(start_extra_torchserve: Callable[..., TorchServe]) -> None:
    """On an extra TorchServe whose keys expire after 6 s: what the control API's key handling relies on."""
    extra = start_extra_torchserve(models={}, overrides={"token_expiration_min": 0.1})
    ping = f"{extra.inference_url}/ping"
    old = extra.keys()
    assert requests.get(ping, headers=extra.headers(), timeout=TIMEOUT).status_code == 200
    stated = json.loads(extra.key_file.read_text())["inference"]["expiration time"]
    expires_at = datetime.fromisoformat(stated.replace("Z", "+00:00")).timestamp()
    time.sleep(max(0.0, expires_at - time.time()) + 0.5)
    expired = requests.get(ping, headers=extra.headers(), timeout=TIMEOUT)
    assert expired.status_code == 400 and expired.json()["type"] == "InvalidKeyException"
    # Renewal: GET /token?type=... on the management port with the API key; the key file is rewritten.
    renew = f"{extra.management_url}/token"
    api = {"Authorization": f"Bearer {old['api']}"}
    assert requests.get(renew, params={"type": "inference"}, headers=api, timeout=TIMEOUT).status_code == 200
    assert extra.keys()["inference"] != old["inference"]
    assert requests.get(ping, headers=extra.headers(), timeout=TIMEOUT).status_code == 200
    mgmt_key = {"Authorization": f"Bearer {old['management']}"}
    r = requests.get(renew, params={"type": "management"}, headers=mgmt_key, timeout=TIMEOUT)
    assert r.status_code == 400, "only the API key may renew keys"
    assert json.loads(extra.key_file.read_text())["API"]["key"] == old["api"]
