"""flask --app control_api create-admin / seed-history / bench-stats."""

from __future__ import annotations

import sqlalchemy as sa

from control_api.extensions import db
from control_api.models import History, User
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


def test_seed_history_needs_confirmation_then_bench(app, runner) -> None:
    assert runner.invoke(args=["seed-history", "--rows", "10"]).exit_code != 0
    result = runner.invoke(args=["seed-history", "--rows", "2000", "--yes"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(History)) == 2000
    runner.invoke(args=["create-admin", "boss", "--password", PASSWORD])
    result = runner.invoke(args=["bench-stats", "--repeat", "2"])
    assert result.exit_code == 0, result.output
    assert "2000 history rows" in result.output
