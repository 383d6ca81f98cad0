"""Archives for the model-administration tests: small hand-made ones, and the upload call."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any


def tiny_archive(name: str = "tiny", version: str = "1.0", manifest: bool = True) -> bytes:
    """A small zip shaped like a .mar: a manifest naming ``name`` ``version``, and a handler file."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as mar:
        if manifest:
            body = {"model": {"modelName": name, "modelVersion": version, "handler": "handler.py"}}
            mar.writestr("MAR-INF/MANIFEST.json", json.dumps(body))
        mar.writestr("handler.py", "def handle(data, context):\n    return data\n" + "#" * 4000)
    return buf.getvalue()


def upload(client: Any, headers: dict[str, str], data: bytes, file_name: str) -> Any:
    return client.post(
        "/models/archives",
        data={"file": (io.BytesIO(data), file_name)},
        headers=headers,
        content_type="multipart/form-data",
    )
