"""/health names what is down; a database outage is a 503, not a 500."""

from __future__ import annotations

from pathlib import Path

from control_api.extensions import db
from tests.control_api.conftest import assert_error, make_app, torchserve_settings


def test_health_ok_and_database_down(client, fake_ts, tmp_path: Path) -> None:
    assert client.get("/health").get_json() == {"status": "ok", "database": "ok", "torchserve": "ok"}
    broken = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'x.db'}"  # cannot be opened
    down = make_app(broken, tmp_path / "i2", **torchserve_settings(fake_ts))
    try:
        body = assert_error(down.test_client().get("/health"), 503)
        assert body["database"] == "unavailable" and body["torchserve"] == "ok"
        assert body["status"] == "unavailable" and body["message"].startswith("database")
        # A user-facing call that needs the database says so too, as 503 rather than 500.
        response = down.test_client().post("/register", json={"username": "alice", "password": "x" * 10})
        assert assert_error(response, 503)["error"] == "database_unavailable"
    finally:
        with down.app_context():
            db.engine.dispose()
