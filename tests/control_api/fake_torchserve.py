"""A stand-in TorchServe on a free loopback port, for fault injection and fast unit tests.

It speaks the parts of TorchServe 0.12 the control API uses: ``/ping``, ``/predictions/<model>[/<version>]``
(a raw image body with ``X-Top-K``, or multipart with a ``top_k`` field, as our handler reads them)
and the management ``/token?type=inference`` renewal, with
token authorization backed by a real ``key_file.json`` that it rewrites on renewal like TorchServe does.
Knobs: ``delay_s`` (answer late: 504 tests), ``expire_inference_key()``, ``fail_renewals``.
The real-TorchServe tests (test_live.py, test_server.py) cover the real thing.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image, UnidentifiedImageError
from werkzeug.formparser import parse_form_data

MODELS = {"resnet50": "1.0"}
LABELS = ["tench", "goldfish", "great white shark", "tiger shark", "hammerhead", "electric ray", "stingray"]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (the 504 tests) is expected: no traceback."""


class FakeTorchServe:
    """State shared by the handler threads; see the module docstring."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.key_file = home / "key_file.json"
        self.delay_s = 0.0
        self.fail_renewals = False
        self.requests: list[dict[str, Any]] = []
        self.renewals = 0
        self.lock = threading.Lock()
        self.keys = {"management": secrets.token_urlsafe(6), "inference": secrets.token_urlsafe(6)}
        self.api_key = secrets.token_urlsafe(6)
        self.expiry = {kind: datetime.now(UTC) + timedelta(minutes=60) for kind in self.keys}
        self.write_key_file()
        self.server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)

    @property
    def inference_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    management_url = inference_url  # one port serves both APIs here

    def write_key_file(self) -> None:
        data = {
            kind: {
                "key": self.keys[kind],
                "expiration time": self.expiry[kind].isoformat().replace("+00:00", "Z"),
            }
            for kind in ("management", "inference")
        }
        data["API"] = {"key": self.api_key}
        self.key_file.write_text(json.dumps(data, indent=2))

    def expire_inference_key(self, in_file_too: bool = False) -> None:
        """Make the current inference key invalid; the key file keeps claiming it is valid unless told."""
        with self.lock:
            self.expiry["inference"] = datetime.now(UTC) - timedelta(seconds=1)
            if in_file_too:
                self.write_key_file()

    def renew(self, kind: str) -> None:
        with self.lock:
            self.renewals += 1
            self.keys[kind] = secrets.token_urlsafe(6)
            self.expiry[kind] = datetime.now(UTC) + timedelta(minutes=60)
            self.write_key_file()

    def key_ok(self, kind: str, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        token = header[len("Bearer ") :]
        if kind == "api":
            return token == self.api_key
        return token == self.keys[kind] and datetime.now(UTC) < self.expiry[kind]

    def classify(self, model: str, body: bytes, top_k: int) -> tuple[int, dict[str, Any]]:
        if not body:
            return 400, {"error": "empty_input", "message": "No image bytes."}
        if not 1 <= top_k <= 100:
            return 422, {"error": "invalid_top_k", "message": "top_k must be between 1 and 100."}
        try:
            with Image.open(io.BytesIO(body)) as image:
                image.load()
                width, height, fmt = image.width, image.height, image.format
        except (UnidentifiedImageError, OSError):
            return 415, {"error": "unsupported_image", "message": "Not a decodable image."}
        predictions = [
            {"class_id": i, "label": LABELS[i % len(LABELS)], "probability": round(0.5 / (i + 1), 6)}
            for i in range(top_k)
        ]
        return 200, {
            "model": {"name": model, "version": MODELS[model], "precision": "fp32"},
            "predictions": predictions,
            "image": {"width": width, "height": height, "format": fmt},
            "timings_ms": {"preprocess": 1.0, "inference": 2.0},
        }

    def start(self) -> FakeTorchServe:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _invalid_key() -> tuple[int, dict[str, Any]]:
    return 400, {
        "code": 400,
        "type": "InvalidKeyException",
        "message": "Token Authorization failed. Token either incorrect, expired, or not provided correctly",
    }


def _handler_for(fake: FakeTorchServe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            auth = self.headers.get("Authorization")
            if url.path == "/ping":
                if not fake.key_ok("inference", auth):
                    return self._send(*_invalid_key())
                return self._send(200, {"status": "Healthy"})
            if url.path == "/token":
                if not fake.key_ok("api", auth) or fake.fail_renewals:
                    return self._send(*_invalid_key())
                kind = parse_qs(url.query).get("type", [""])[0]
                fake.renew(kind)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            return self._send(404, {"code": 404, "type": "ResourceNotFoundException", "message": "not found"})

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = url.path.strip("/").split("/")
            fake.requests.append(
                {
                    "path": url.path,
                    "query": url.query,
                    "size": len(body),
                    "request_id": self.headers.get("X-Request-ID"),
                    "content_type": self.headers.get("Content-Type"),
                    "top_k_header": self.headers.get("X-Top-K"),
                }
            )
            if fake.delay_s:
                time.sleep(fake.delay_s)
            if not fake.key_ok("inference", self.headers.get("Authorization")):
                return self._send(*_invalid_key())
            if parts[0] != "predictions" or len(parts) not in (2, 3):
                return self._send(
                    404, {"code": 404, "type": "ResourceNotFoundException", "message": "not found"}
                )
            model = parts[1]
            if model not in MODELS or (len(parts) == 3 and parts[2] != MODELS[model]):
                return self._send(
                    404,
                    {"code": 404, "type": "ModelNotFoundException", "message": f"Model not found: {model}"},
                )
            # Like TorchServe 0.12: form fields reach the handler, query parameters do not.
            form, files = _parse_multipart(self.headers.get("Content-Type", ""), body)
            fake.requests[-1]["form"] = form
            image = files.get("data", body if not form and not files else b"")
            top_k = form.get("top_k") or self.headers.get("X-Top-K") or "5"
            return self._send(*fake.classify(model, image, int(top_k)))

    return Handler


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    if not content_type.startswith("multipart/form-data"):
        return {}, {}
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    _, form, files = parse_form_data(environ)
    return dict(form), {name: storage.read() for name, storage in files.items()}


@contextmanager
def running_fake(home: Path) -> Iterator[FakeTorchServe]:
    home.mkdir(parents=True, exist_ok=True)
    fake = FakeTorchServe(home).start()
    try:
        yield fake
    finally:
        fake.stop()
