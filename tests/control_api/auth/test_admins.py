"""flask --app control_api create-admin, and the ADMIN_USERNAME/ADMIN_PASSWORD bootstrap."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import sqlalchemy as sa

from control_api import create_app
from control_api.config import ConfigError
from control_api.extensions import db
from control_api.tables import User
from tests.control_api.conftest import PASSWORD, app_on

STRONG = secrets.token_urlsafe(48)


def _user(app, name: str) -> User:
    with app.app_context():
        user = db.session.scalar(sa.select(User).where(User.username == name))
        assert user is not None, name
        db.session.expunge(user)
        return user


def test_create_admin_with_password_option(app, runner, client) -> None:
    result = runner.invoke(args=["create-admin", "boss", "--password", PASSWORD])
    assert result.exit_code == 0, result.output
    assert "Created admin 'boss'" in result.output
    assert _user(app, "boss").is_admin
    assert client.post("/token", data={"username": "boss", "password": PASSWORD}).status_code == 200


def test_create_admin_prompts_for_the_password(app, runner) -> None:
    result = runner.invoke(args=["create-admin", "boss"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert _user(app, "boss").is_admin


def test_create_admin_promotes_an_existing_user(app, runner, auth) -> None:
    auth.register("carol")
    result = runner.invoke(args=["create-admin", "carol", "--password", "another password"])
    assert result.exit_code == 0 and "Updated admin 'carol'" in result.output
    assert _user(app, "carol").is_admin
    assert auth.login("carol", "another password").status_code == 200


def test_create_admin_validates(runner) -> None:
    assert runner.invoke(args=["create-admin", "x", "--password", PASSWORD]).exit_code != 0
    assert runner.invoke(args=["create-admin", "boss", "--password", "short"]).exit_code != 0


def test_admin_from_environment_created_once(database_url: str, tmp_path: Path) -> None:
    settings = {"ADMIN_USERNAME": "root", "ADMIN_PASSWORD": PASSWORD}
    with app_on(database_url, tmp_path / "i") as app:  # creates the schema
        pass
    for _ in range(2):  # the second start (another gunicorn worker) finds it there
        with app_on(database_url, tmp_path / "i", **settings) as app, app.app_context():
            users = db.session.scalars(sa.select(User)).all()
            assert [(u.username, u.is_admin) for u in users] == [("root", True)]
    response = app.test_client().post("/token", data={"username": "root", "password": PASSWORD})
    assert response.status_code == 200


def test_invalid_admin_from_environment_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ADMIN_USERNAME"):
        create_app(
            {
                "TESTING": True,
                "SECRET_KEY": STRONG,
                "INSTANCE_PATH": str(tmp_path),
                "ADMIN_USERNAME": "x",
                "ADMIN_PASSWORD": PASSWORD,
            }
        )


def test_create_admin_revokes_old_tokens_and_enables_the_account(app, runner, client, auth) -> None:
    """The recovery path: a new password (the tokens issued under the old one stop working), and a
    disabled account enabled again. The name matches in any case."""
    old = auth.headers("Carol")
    with app.app_context():
        db.session.execute(sa.update(User).where(User.username == "Carol").values(disabled=True))
        db.session.commit()
    result = runner.invoke(args=["create-admin", "carol", "--password", "another password"])
    assert result.exit_code == 0 and "Updated admin 'Carol'" in result.output
    user = _user(app, "Carol")
    assert user.is_admin and not user.disabled
    response = client.get("/me", headers=old)
    assert response.status_code == 401 and response.get_json()["error"] == "token_revoked"
    assert auth.login("CAROL", "another password").status_code == 200
