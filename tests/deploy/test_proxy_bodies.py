"""The proxy's request-body limits for real (tests/deploy/conftest.py: Caddy in front of the API as
deployed): PROXY_MAX_BODY for every request, PROXY_MAX_ARCHIVE_BODY for POST /models/archives. A body over
its declared Content-Length gets the proxy's JSON 413, whole, before anything is forwarded, over HTTP/1.1
and HTTP/2. (A chunked body is cut off at the limit, but its answer may be the API's: see the Caddyfile.)

The over-limit requests go through curl, the client that speaks HTTP/2 here. They are signed in, so that a
request the proxy forwarded would be read by the API (its limits are the proxy's less 1 MiB, as in compose)
and refused with the API's own 413, whose message differs, rather than with a 401.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.deploy.proxy_server import Proxy

PROTOCOLS = {"http1.1": "1.1", "http2": "2"}


def _curl_upload(
    proxy: Proxy, path: str, file: Path, protocol: str, headers: dict[str, str]
) -> tuple[int, str, Any]:
    """POST `file` as the multipart field `file`; the status, the HTTP version and the JSON body.

    Over HTTP/2 the request asks for 100-continue, as curl itself does over HTTP/1.1 for a large body: the
    proxy then answers before the body is sent. Without it, curl 7.88 (Debian 12) now and then drops an
    answer that arrives while it is still uploading (the stream's RST_STREAM NO_ERROR after the response).
    """
    curl = shutil.which("curl")
    if curl is None:
        pytest.fail("curl is missing (apt-get install curl)")
    body = file.with_suffix(".response")
    command = [curl, "--silent", "--show-error", f"--{protocol}", "--cacert", str(proxy.ca_file)]
    if protocol == "http2":
        headers = {**headers, "Expect": "100-continue"}
    command += [arg for name, value in headers.items() for arg in ("--header", f"{name}: {value}")]
    command += ["--form", f"file=@{file}", "--output", str(body)]
    command += ["--write-out", "%{http_code} %{http_version}", proxy.url(path)]

    done = subprocess.run(command, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stderr  # e.g. 18: the answer was cut short
    status, version = done.stdout.split()
    return int(status), version, json.loads(body.read_bytes())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_declared_body_over_the_limit_gets_the_whole_json_413(
    proxy: Proxy, protocol: str, tmp_path: Path
) -> None:
    upload = tmp_path / "big.jpg"
    upload.write_bytes(b"x" * (proxy.max_body + 1024))

    status, version, answer = _curl_upload(proxy, "/forward", upload, protocol, proxy.admin_headers)

    assert (status, version) == (413, PROTOCOLS[protocol])
    assert answer == {
        "error": "payload_too_large",
        "message": f"The request body is over {proxy.max_body} bytes.",
    }


def _archive(padding_bytes: int) -> bytes:
    """A .mar the API accepts (a manifest and a handler), padded with a stored random member."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as mar:
        manifest = {"model": {"modelName": "big", "modelVersion": "1.0", "handler": "handler.py"}}
        mar.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        mar.writestr("handler.py", "def handle(data, context):\n    return data\n")
        mar.writestr("weights.bin", os.urandom(padding_bytes))
    return buf.getvalue()


def test_an_archive_over_the_body_limit_reaches_the_api_under_its_own_limit(proxy: Proxy) -> None:
    """POST /models/archives has its own limit: an archive twice PROXY_MAX_BODY is stored whole."""
    archive = _archive(2 * proxy.max_body)

    response = requests.post(
        proxy.url("/models/archives"),
        files={"file": ("big-1.0.mar", archive)},
        headers=proxy.admin_headers,
        verify=str(proxy.ca_file),
        timeout=120,
    )

    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == hashlib.sha256(archive).hexdigest()
    assert (proxy.model_store / "big-1.0.mar").read_bytes() == archive


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_archive_over_its_limit_gets_the_whole_json_413(
    proxy: Proxy, protocol: str, tmp_path: Path
) -> None:
    upload = tmp_path / "huge-1.0.mar"
    upload.write_bytes(_archive(proxy.max_archive_body))

    status, version, answer = _curl_upload(proxy, "/models/archives", upload, protocol, proxy.admin_headers)

    assert (status, version) == (413, PROTOCOLS[protocol])
    assert answer == {
        "error": "payload_too_large",
        "message": f"The request body is over {proxy.max_archive_body} bytes.",
    }
    assert not (proxy.model_store / "huge-1.0.mar").exists()
