"""Who the limits count: /token per username as well as per address, IPv6 clients by their /64, and the
password-checking /me endpoints per user."""

from __future__ import annotations

from pathlib import Path

from tests.control_api.conftest import PASSWORD, AuthActions
from tests.control_api.test_rate_limits import assert_429, limited_app


def attempt(client, username: str, ip: str) -> int:
    answer = client.post(
        "/token",
        data={"username": username, "password": "wrong password"},
        environ_overrides={"REMOTE_ADDR": ip},
    )
    return int(answer.status_code)


def test_token_limited_per_username_across_addresses(tmp_path: Path, fake_ts) -> None:
    with limited_app(
        tmp_path, fake_ts, RATE_LIMIT_TOKEN="100/minute", RATE_LIMIT_TOKEN_USERNAME="3/minute"
    ) as app:
        client = app.test_client()

        spread = [attempt(client, name, f"192.0.2.{i}") for i, name in enumerate(["alice", "Alice", "ALICE"])]
        refused = client.post(
            "/token",
            json={"username": "aLiCe", "password": "x" * 8},
            environ_overrides={"REMOTE_ADDR": "192.0.2.9"},
        )
        other = attempt(client, "bob", "192.0.2.10")

        assert spread == [401, 401, 401]
        assert_429(refused)  # a fourth address, a fourth spelling, JSON instead of a form: the same budget
        assert other == 401


def test_ipv6_clients_are_keyed_by_their_64(tmp_path: Path, fake_ts) -> None:
    with limited_app(tmp_path, fake_ts, RATE_LIMIT_TOKEN="2/minute", RATE_LIMIT_TOKEN_USERNAME="") as app:
        client = app.test_client()

        same_64 = [attempt(client, f"user{i}", f"2001:db8:1:2::{i:x}") for i in range(1, 4)]
        next_64 = attempt(client, "user9", "2001:db8:1:3::1")

        assert same_64 == [401, 401, 429]
        assert next_64 == 401


def test_password_change_and_account_deletion_are_limited(tmp_path: Path, fake_ts) -> None:
    with limited_app(
        tmp_path,
        fake_ts,
        RATE_LIMIT_TOKEN="",
        RATE_LIMIT_TOKEN_USERNAME="",
        RATE_LIMIT_PASSWORD_CHANGE="2/minute",
        RATE_LIMIT_ACCOUNT_DELETE="2/minute",
    ) as app:
        client = app.test_client()
        headers = AuthActions(client).headers("alice")
        wrong = {"current_password": "not my password", "new_password": "another password"}

        changes = [client.post("/me/password", json=wrong, headers=headers).status_code for _ in range(2)]
        change_refused = client.post("/me/password", json=wrong, headers=headers)
        deletes = [
            client.delete("/me", json={"password": "guess " * 2}, headers=headers).status_code
            for _ in range(2)
        ]
        delete_refused = client.delete("/me", json={"password": PASSWORD}, headers=headers)

        assert changes == [403, 403]
        assert_429(change_refused)
        assert deletes == [403, 403]
        assert_429(delete_refused)  # even with the right password: guessing is what the limit stops
