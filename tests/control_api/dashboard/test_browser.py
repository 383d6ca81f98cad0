"""The dashboard and the API docs in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by selenium) against the app served over HTTP, with every host but 127.0.0.1
unresolvable (no CDN can be reached). Screenshots are kept under the test's tmp dir."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import make_server

from control_api.tables import utcnow
from tests.control_api.conftest import PASSWORD, AuthActions
from tests.control_api.records.history_rows import make_rows

CHARTS = ("chart-requests", "chart-latency", "chart-errors", "chart-classes", "chart-users")
WAIT_S = 60


@pytest.fixture
def base_url(app) -> Iterator[str]:
    """The test app on a free port, served by werkzeug in a thread (real HTTP)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1800",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",  # the network beyond us is cut off
        f"--user-data-dir={tmp_path / 'chromium'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    chrome.set_page_load_timeout(WAIT_S)
    try:
        yield chrome
    finally:
        chrome.quit()


def _console_errors(browser: webdriver.Chrome) -> list[dict[str, Any]]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def _outside_requests(browser: webdriver.Chrome, base_url: str) -> list[str]:
    names = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [name for name in names if not name.startswith(base_url) and not name.startswith("data:")]


def _sign_in(browser: webdriver.Chrome, base_url: str, username: str) -> None:
    browser.get(f"{base_url}/dashboard")
    assert browser.current_url.endswith("/dashboard/login")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    browser.find_element(By.ID, "sign-in").click()


def test_dashboard_draws_every_chart_with_the_numbers_of_stats(
    app, base_url: str, browser: webdriver.Chrome, auth: AuthActions, tmp_path: Path
) -> None:
    make_rows(app, 200, utcnow() - timedelta(hours=20), timedelta(hours=20))
    token = auth.token("root", admin=True)

    _sign_in(browser, base_url, "root")
    WebDriverWait(browser, WAIT_S).until(
        lambda b: b.execute_script("return document.getElementById('dashboard')?.dataset.loaded") == "1"
    )
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    for canvas in CHARTS:
        points = browser.execute_script(
            "const c = Chart.getChart(arguments[0]);"
            "return c ? c.data.datasets.reduce((n, d) => n + d.data.filter(v => v).length, 0) : -1;",
            canvas,
        )
        assert points > 0, f"{canvas}: nothing drawn"
    since = browser.find_element(By.ID, "dashboard").get_attribute("data-since") or ""
    stats = requests.get(
        f"{base_url}/stats?since={quote(since)}", headers={"Authorization": f"Bearer {token}"}, timeout=WAIT_S
    ).json()
    shown = {name: browser.find_element(By.ID, name).text for name in ("total-requests", "failed-requests")}
    assert shown == {
        "total-requests": str(stats["total_requests"]),
        "failed-requests": str(stats["failed_requests"]),
    }
    p50 = stats["processing_time_ms"]["p50"]
    assert browser.find_element(By.ID, "latency-p50").text == f"{p50:.1f} ms"
    failures = browser.find_elements(By.CSS_SELECTOR, "#failures tr")
    assert len(failures) == 1 + 20 and "failed" in failures[1].text
    assert _console_errors(browser) == []
    assert _outside_requests(browser, base_url) == []


def test_a_non_admin_is_refused(
    base_url: str, browser: webdriver.Chrome, auth: AuthActions, tmp_path: Path
) -> None:
    auth.token("alice")

    _sign_in(browser, base_url, "alice")
    # The form posts and the refusal is a new page: wait for it rather than read the old one.
    errors = WebDriverWait(browser, WAIT_S).until(lambda b: b.find_elements(By.ID, "login-error"))

    assert "admins only" in errors[0].text
    browser.get(f"{base_url}/dashboard")
    assert browser.current_url.endswith("/dashboard/login")
    browser.save_screenshot(str(tmp_path / "refused.png"))


@pytest.mark.parametrize(
    ("path", "operation"), [("/docs", ".opblock"), ("/redoc", "[data-section-id^='tag/']")]
)
def test_api_docs_render_their_operations_offline(
    base_url: str, browser: webdriver.Chrome, path: str, operation: str, tmp_path: Path
) -> None:
    browser.get(f"{base_url}{path}")

    WebDriverWait(browser, WAIT_S).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, operation)) >= 5)
    browser.save_screenshot(str(tmp_path / f"{path.strip('/')}.png"))
    assert _console_errors(browser) == []
    assert _outside_requests(browser, base_url) == []
