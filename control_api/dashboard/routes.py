"""``/dashboard``: the login form, the page with the charts, and logging out. Admins only; a signed-in
non-admin gets a 403 page. Not part of the JSON API (no OpenAPI entry)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from flask_jwt_extended import set_access_cookies, unset_jwt_cookies, verify_jwt_in_request
from flask_jwt_extended.exceptions import JWTExtendedException
from jwt import PyJWTError

from ..auth.tokens import issue_token
from ..records.timeseries import DEFAULT_POINTS
from .panels import DEFAULT_RANGE, RANGES, last_failures, model_versions, range_start, summary
from .session import check_login, cookie_user

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
NO_STORE = {"Cache-Control": "no-store"}


@bp.get("/login")
def login_form() -> Any:
    return render_template("dashboard/login.html", error=None), 200, NO_STORE


@bp.post("/login")
def login() -> Any:
    user = check_login(request.form.get("username", ""), request.form.get("password", ""))
    if user is None:
        error = "Wrong username or password."
        return render_template("dashboard/login.html", error=error), 401, NO_STORE
    if not user.is_admin:
        return render_template("dashboard/login.html", error="The dashboard is for admins only."), 403
    response = make_response(redirect(url_for("dashboard.index")))
    set_access_cookies(response, issue_token(user))
    return response


@bp.post("/logout")
def logout() -> Response:
    """Needs the cookie's CSRF token in the form (``csrf_token``): no other site can sign you out."""
    response = make_response(redirect(url_for("dashboard.login_form"), code=303))
    try:
        verify_jwt_in_request(locations=["cookies"])
    except (JWTExtendedException, PyJWTError):
        return response
    unset_jwt_cookies(response)
    return response


@bp.get("")
def index() -> Any:
    user = cookie_user()
    if user is None:
        return redirect(url_for("dashboard.login_form"))
    if not user.is_admin:
        return render_template("dashboard/refused.html", username=user.username), 403, NO_STORE
    chosen = request.args.get("range", DEFAULT_RANGE)
    if chosen not in RANGES:
        chosen = DEFAULT_RANGE
    since, bucket = range_start(chosen)
    stats = summary(since)
    page = render_template(
        "dashboard/index.html",
        user=user,
        ranges=list(RANGES),
        chosen=chosen,
        since=since.isoformat(timespec="seconds") + "Z",
        bucket=bucket,
        points=DEFAULT_POINTS,
        stats=stats,
        versions=model_versions(stats["by_model"]),
        failures=last_failures(),
        csrf_token=request.cookies.get("csrf_access_token", ""),
    )
    return page, 200, NO_STORE
