"""Accounts through the deployed server: scripts/boot.sh, two gunicorn workers, the real TorchServe, text
logs. A password change and a disable revoke tokens on every worker at once, and a path holding CR/LF
cannot forge a line in the text access log."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from tests.control_api.conftest import PASSWORD
from tests.control_api.test_server import boot_server

NEW_PASSWORD = "a brand new passphrase"


def _login(url: str, username: str, password: str = PASSWORD) -> requests.Response:
    return requests.post(f"{url}/token", data={"username": username, "password": password}, timeout=30)


def _bearer(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_accounts_through_gunicorn(torchserve: Any, tmp_path: Path) -> None:
    with boot_server(f"sqlite:///{tmp_path / 'api.db'}", torchserve, tmp_path) as server:
        url = server.url
        created = requests.post(
            f"{url}/register", json={"username": "Alice", "password": PASSWORD}, timeout=30
        )
        assert created.status_code == 201
        old = _bearer(_login(url, "alice"))  # any case

        def statuses(headers: dict[str, str]) -> set[tuple[int, str | None]]:
            """/me over 8 new connections: either worker answers each."""
            answers = [requests.get(f"{url}/me", headers=headers, timeout=30) for _ in range(8)]
            return {(a.status_code, a.json().get("error")) for a in answers}

        assert statuses(old) == {(200, None)}
        changed = requests.post(
            f"{url}/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=old,
            timeout=30,
        )
        new = _bearer(changed)
        assert statuses(old) == {(401, "token_revoked")}
        assert statuses(new) == {(200, None)}

        admin = _bearer(_login(url, "root"))  # created from ADMIN_USERNAME at start
        alice_id = requests.get(f"{url}/me", headers=new, timeout=30).json()["id"]
        disabled = requests.patch(
            f"{url}/users/{alice_id}", json={"disabled": True}, headers=admin, timeout=30
        )
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True
        assert statuses(new) == {(401, "token_revoked")}
        assert _login(url, "Alice", NEW_PASSWORD).status_code == 403

        forged = requests.get(f"{url}/x%0D%0AFORGED%20GET%20/admin%20200", timeout=30)
        assert forged.status_code == 404
    lines = server.log.read_text(errors="replace").splitlines()
    assert not [line for line in lines if line.startswith("FORGED")]
    assert [line for line in lines if "GET /x\\r\\nFORGED GET /admin 200 404" in line]
