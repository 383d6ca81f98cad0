"""flask --app control_api create-admin."""

from __future__ import annotations

import sqlalchemy as sa

from control_api.extensions import db
from control_api.tables import User
from tests.control_api.conftest import PASSWORD


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
