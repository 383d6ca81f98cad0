"""launcher.torchserve_process: the config it writes, and a real TorchServe started and stopped with it.

The session ``torchserve`` fixture (tests/conftest.py) runs on this module for every other TorchServe test;
here a model-less instance (a few seconds to start) shows the parts those tests take for granted.
"""

from __future__ import annotations

from pathlib import Path

import requests

from launcher.process_group import group_alive
from launcher.torchserve_process import (
    PORT_KEYS,
    REPO_CONFIG,
    TorchServe,
    free_ports,
    read_properties,
    start,
    write_config,
)


def test_config_is_the_repository_one_with_ports_models_and_overrides(tmp_path: Path) -> None:
    ports = dict(zip(PORT_KEYS, range(20001, 20001 + len(PORT_KEYS)), strict=True))
    shipped = read_properties(REPO_CONFIG)

    path = write_config(tmp_path, ports, {"a": "a.mar", "b": "b-2.0.mar"}, {"token_expiration_min": 0.5})

    props = read_properties(path)
    assert props["inference_address"] == f"http://127.0.0.1:{ports['inference']}"
    assert props["management_address"] == f"http://127.0.0.1:{ports['management']}"
    assert props["metrics_address"] == f"http://127.0.0.1:{ports['metrics']}"
    assert props["grpc_inference_port"] == str(ports["grpc_inference"])
    assert props["grpc_management_port"] == str(ports["grpc_management"])
    assert props["load_models"] == "a=a.mar,b=b-2.0.mar"
    assert props["token_expiration_min"] == "0.5"
    unchanged = {"disable_token_authorization", "enable_model_api", "allowed_urls", "max_request_size"}
    assert {key: props[key] for key in unchanged} == {key: shipped[key] for key in unchanged}


def test_without_models_nothing_is_loaded(tmp_path: Path) -> None:
    ports = dict(zip(PORT_KEYS, free_ports(len(PORT_KEYS)), strict=True))

    props = read_properties(write_config(tmp_path, ports, {}, {}))

    assert "load_models" not in props


def test_start_serves_with_its_keys_and_stop_leaves_no_process(tmp_path: Path) -> None:
    ts: TorchServe = start(tmp_path / "home", tmp_path, models={})
    try:
        ping = requests.get(f"{ts.inference_url}/ping", headers=ts.headers(), timeout=30)
        refused = requests.get(f"{ts.inference_url}/ping", timeout=30)
    finally:
        ts.stop()

    assert ping.status_code == 200
    assert refused.status_code in (400, 401)  # token authorization stays on
    assert ts.process.returncode is not None
    assert not group_alive(ts.process.pid)
    assert (ts.log_dir / "console.log").is_file()
