"""The TorchServe client on its own: an unreachable TorchServe is reported, not raised."""

from __future__ import annotations

from pathlib import Path

from control_api.torchserve.client import TorchServeClient


def test_ping_reports_an_unreachable_torchserve(tmp_path: Path) -> None:
    client = TorchServeClient(
        {
            "TORCHSERVE_INFERENCE_URL": "http://127.0.0.1:9",
            "TORCHSERVE_MANAGEMENT_URL": "http://127.0.0.1:9",
            "TORCHSERVE_TIMEOUT": 1,
            "TORCHSERVE_CONNECT_TIMEOUT": 1,
            "TORCHSERVE_PARALLEL": 2,
            "TORCHSERVE_KEY_FILE": str(tmp_path / "none.json"),
        }
    )
    healthy, detail = client.ping()
    assert not healthy and "unreachable" in detail
