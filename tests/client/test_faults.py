"""Faults the client rides through, injected by a proxy in front of the live API (tests/client/fault_proxy):
a window of 503s and 429s with Retry-After, a service that stays down past the deadline, and a token that
expires in the middle of a run."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from mlservice_client import (
    AuthenticationError,
    Client,
    RetryPolicy,
    ServiceUnavailableError,
    exit_codes,
)
from tests.client.conftest import Api, User, make_images, mint_token, mlsvc, own_history_total, token_for
from tests.client.fault_proxy import FaultPlan, fault_proxy

RETRY_AFTER_S = 1.0


def test_a_window_of_503s_and_429s_is_ridden_through_honouring_retry_after(
    api: Api, user: User, tmp_path: Path
) -> None:
    good, _ = make_images(tmp_path / "photos", good=12)
    plan = FaultPlan(faults=[(503, RETRY_AFTER_S), (429, RETRY_AFTER_S)] * 4)
    out = tmp_path / "out.jsonl"
    with fault_proxy(api.url, plan) as url:
        done = mlsvc(
            "--url", url, "--token", token_for(api, user), "classify", str(tmp_path / "photos"),
            "-j", "4", "-o", str(out), config_dir=tmp_path / "config",
        )  # fmt: skip

    assert done.returncode == exit_codes.OK, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["source"] for line in lines) == sorted(str(p) for p in good)
    assert all(line["ok"] for line in lines)
    injected = plan.injected()
    assert sorted(s.status for s in injected) == [429] * 4 + [503] * 4
    for fault in injected:  # each refused file was sent again, and not before Retry-After had passed
        later = [s for s in plan.seen if s.filename == fault.filename and s.at > fault.at]
        assert later, fault
        assert later[0].at - fault.at >= RETRY_AFTER_S - 0.05, done.stderr
    assert own_history_total(api, token_for(api, user)) == 12  # the API saw each file once


def test_a_service_down_past_the_deadline_is_given_up(api: Api, user: User, tmp_path: Path) -> None:
    good, _ = make_images(tmp_path / "photos", good=2)
    plan = FaultPlan(faults=[(503, 0.5)] * 1000)
    with fault_proxy(api.url, plan) as url:
        client = Client(
            url, username=user.username, password=user.password, retry=RetryPolicy(deadline_s=2.0)
        )
        with pytest.raises(ServiceUnavailableError) as caught:
            client.classify(good[0])
        done = mlsvc(
            "--url", url, "--token", token_for(api, user), "--deadline", "2", "classify", str(good[1]),
            config_dir=tmp_path / "config",
        )  # fmt: skip

    assert caught.value.slug == "service_unavailable" and caught.value.status == 503
    assert caught.value.attempts >= 3 and caught.value.retry_after == 0.5
    assert done.returncode == exit_codes.UNAVAILABLE, done.stderr
    assert "service_unavailable" in done.stderr and "not done 1" in done.stderr
    assert done.stdout == ""  # the file was not done: no line, so --resume would try it again


def test_a_token_expiring_mid_run_is_renewed_and_stored(api: Api, user: User, tmp_path: Path) -> None:
    _good, _ = make_images(tmp_path / "photos", good=12)
    lifetime = 10.0
    short = mint_token(api, user.username, timedelta(seconds=lifetime), tmp_path)
    expires = time.monotonic() + lifetime
    # The first 4 files go at once; every later one is held until the token has expired.
    plan = FaultPlan(hold_after=4, hold_until=expires + 1.0)
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    out = tmp_path / "out.jsonl"
    with fault_proxy(api.url, plan) as url:
        (config_dir / "config.json").write_text(
            json.dumps({"url": url, "username": user.username, "token": short})
        )
        done = mlsvc(
            "classify", str(tmp_path / "photos"), "-j", "2", "-o", str(out),
            config_dir=config_dir, env={"MLSVC_PASSWORD": user.password},
        )  # fmt: skip

    assert done.returncode == exit_codes.OK, done.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 12 and all(line["ok"] for line in lines)
    answered = [s for s in plan.seen if s.status == 200]
    renewed = json.loads((config_dir / "config.json").read_text())["token"]
    assert renewed != short
    assert {s.authorization for s in answered} == {f"Bearer {short}", f"Bearer {renewed}"}
    assert [s.status for s in plan.seen].count(401) >= 1  # the expired token was refused, then renewed


def test_the_sdk_renews_an_expired_token_from_its_credentials(api: Api, user: User, tmp_path: Path) -> None:
    photo = make_images(tmp_path / "photos", good=1)[0][0]
    expired = mint_token(api, user.username, timedelta(seconds=-1), tmp_path)
    with_credentials = Client(api.url, token=expired, username=user.username, password=user.password)
    token_only = Client(api.url, token=expired)

    result = with_credentials.classify(photo)
    with pytest.raises(AuthenticationError) as caught:
        token_only.classify(photo)

    assert result.top1 is not None and with_credentials.renewals == 1
    assert with_credentials.token != expired
    assert caught.value.slug == "token_expired" and caught.value.status == 401
