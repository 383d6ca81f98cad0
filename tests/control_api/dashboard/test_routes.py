"""/dashboard through the Flask client: the login form, the cookie-held JWT, CSRF, admins only."""

from __future__ import annotations

from datetime import timedelta

from control_api.tables import utcnow
from tests.control_api.conftest import PASSWORD, AuthActions, assert_error
from tests.control_api.records.history_rows import make_rows


def _login(client, auth: AuthActions, username: str, admin: bool):
    auth.token(username, admin=admin)  # creates the account
    return client.post("/dashboard/login", data={"username": username, "password": PASSWORD})


def test_dashboard_without_a_cookie_sends_to_the_login_form(client) -> None:
    response = client.get("/dashboard")

    assert response.status_code == 302 and response.location.endswith("/dashboard/login")
    assert b'name="password"' in client.get("/dashboard/login").data


def test_admin_login_sets_the_cookies_and_shows_the_page(app, client, auth: AuthActions) -> None:
    make_rows(app, 40, utcnow() - timedelta(hours=2), timedelta(hours=2))

    response = _login(client, auth, "root", admin=True)

    assert response.status_code == 302 and response.location.endswith("/dashboard")
    cookies = response.headers.getlist("Set-Cookie")
    assert any(
        c.startswith("access_token_cookie=") and "HttpOnly" in c and "SameSite=Strict" in c for c in cookies
    )
    assert any(c.startswith("csrf_access_token=") for c in cookies)
    page = client.get("/dashboard")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    stats = client.get("/stats?since=" + html.split('data-since="')[1].split('"')[0]).get_json()
    assert f'<span id="total-requests">{stats["total_requests"]}</span>' in html
    for canvas in ("chart-requests", "chart-latency", "chart-errors", "chart-classes", "chart-users"):
        assert f'id="{canvas}"' in html
    assert 'src="http' not in html and 'href="http' not in html


def test_wrong_password_and_non_admins_are_refused(client, auth: AuthActions) -> None:
    auth.token("alice")

    wrong = client.post("/dashboard/login", data={"username": "alice", "password": "nope"})
    user = client.post("/dashboard/login", data={"username": "alice", "password": PASSWORD})

    assert wrong.status_code == 401 and b"Wrong username or password" in wrong.data
    assert user.status_code == 403 and not user.headers.getlist("Set-Cookie")


def test_a_non_admin_cookie_gets_a_403_page(app, client, auth: AuthActions) -> None:
    from flask_jwt_extended import set_access_cookies

    from control_api.auth.tokens import issue_token
    from control_api.auth.users import find_user

    auth.token("bob")
    with app.test_request_context():
        bob = find_user("bob")
        assert bob is not None
        response = app.make_response("")
        set_access_cookies(response, issue_token(bob))
    client.set_cookie(
        "access_token_cookie", response.headers.getlist("Set-Cookie")[0].split(";")[0].split("=", 1)[1]
    )

    page = client.get("/dashboard")

    assert page.status_code == 403 and b"admins only" in page.data


def test_cookie_state_changes_need_the_csrf_token(client, auth: AuthActions) -> None:
    _login(client, auth, "root", admin=True)
    csrf = client.get_cookie("csrf_access_token").value

    refused = client.delete("/history", headers={"X-Admin-Token": "x"})
    allowed = client.get("/stats")
    logged_out = client.post("/dashboard/logout", data={"csrf_token": csrf})

    assert_error(refused, 401)
    assert allowed.status_code == 200
    assert logged_out.status_code == 303
    assert client.get("/dashboard").status_code == 302  # the cookie is gone


def test_logout_without_the_csrf_token_keeps_the_session(client, auth: AuthActions) -> None:
    _login(client, auth, "root", admin=True)

    client.post("/dashboard/logout", data={})

    assert client.get("/dashboard").status_code == 200


def test_model_versions_show_their_rollout_role(app, client, auth: AuthActions) -> None:
    from control_api.extensions import db
    from control_api.model_admin.tables import RolloutPolicy

    make_rows(app, 30, utcnow() - timedelta(hours=1), timedelta(hours=1))
    with app.app_context():
        db.session.add(RolloutPolicy(model_name="resnet50", stable="1.0", canary="2.0", canary_percent=10.0))
        db.session.commit()
    _login(client, auth, "root", admin=True)

    html = client.get("/dashboard").get_data(as_text=True)

    assert "<td>stable (canary)</td>" in html and "<td>canary 10 % (canary)</td>" in html
