"""TorchServe's key file: read, expiry, half-written files, renewal shared by several workers."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from control_api.torchserve.keys import KeyStore, parse_instant


def write_keys(path: Path, inference: str, expires: datetime | None = None) -> None:
    expires = expires or datetime.now(UTC) + timedelta(minutes=60)
    stamp = expires.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"  # Java prints up to nanoseconds
    path.write_text(
        json.dumps(
            {
                "management": {"key": "m", "expiration time": stamp},
                "inference": {"key": inference, "expiration time": stamp},
                "API": {"key": "api-key"},
            }
        )
    )


def test_key_file_read_and_expiry(tmp_path: Path) -> None:
    path = tmp_path / "key_file.json"
    store = KeyStore(str(path))
    assert store.key("inference") is None  # no file: token authorization off
    write_keys(path, "k1")
    key = store.key("inference")
    assert key is not None and key.value == "k1" and not key.expired()
    write_keys(path, "k2", datetime.now(UTC) - timedelta(seconds=1))
    key = store.key("inference")
    assert key is not None and key.value == "k2" and key.expired()
    assert store.key("API").value == "api-key"  # type: ignore[union-attr]


def test_half_written_key_file_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "key_file.json"
    path.write_text("")

    def finish() -> None:
        time.sleep(0.2)
        write_keys(path, "late")

    threading.Thread(target=finish).start()
    key = KeyStore(str(path)).key("inference")
    assert key is not None and key.value == "late"


def test_instants_as_java_writes_them() -> None:
    assert parse_instant("2024-02-16T21:12:24.801167Z") == datetime(
        2024, 2, 16, 21, 12, 24, 801167, tzinfo=UTC
    )
    assert parse_instant("2024-02-16T21:12:24.801167123Z") is not None
    assert parse_instant("2024-02-16T21:12:24Z") is not None
    assert parse_instant("garbage") is None and parse_instant(None) is None


def test_renewal_runs_once_across_workers(tmp_path: Path) -> None:
    """Eight threads, in two 'processes' (two KeyStores), all holding the same stale key: one renewal."""
    path = tmp_path / "key_file.json"
    write_keys(path, "stale")
    calls: list[str] = []

    def renew_call(api_key: str) -> None:
        assert api_key == "api-key"
        calls.append(api_key)
        time.sleep(0.2)  # widen the window for a second renewal
        write_keys(path, f"fresh-{len(calls)}")

    stores = [KeyStore(str(path)), KeyStore(str(path))]
    results: list[str] = []

    def worker(i: int) -> None:
        key = stores[i % 2].renew("inference", "stale", renew_call)
        assert key is not None
        results.append(key.value)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert results == ["fresh-1"] * 8
