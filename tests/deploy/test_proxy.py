"""docker/proxy/Caddyfile for real (tests/deploy/conftest.py: Caddy in front of the API as deployed and the
session's real TorchServe): TLS, redirects, what is not served, slow uploads, X-Forwarded-For. Request
bodies: test_proxy_bodies.py."""

from __future__ import annotations

import socket
import ssl

import pytest
import requests

from tests.deploy.proxy_server import Proxy


def test_https_with_a_certificate_made_at_first_start(proxy: Proxy) -> None:
    response = requests.get(proxy.url("/health"), verify=str(proxy.ca_file), timeout=60)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert "Server" not in response.headers


def test_the_certificate_is_from_caddys_own_authority_not_a_public_one(proxy: Proxy) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(proxy.url("/health"), timeout=60)  # the system's public CAs do not know it


def test_plain_http_only_redirects_to_https(proxy: Proxy) -> None:
    response = requests.get(
        f"http://localhost:{proxy.http_port}/history?page=2", allow_redirects=False, timeout=60
    )

    assert response.status_code == 308
    assert response.headers["Location"] == proxy.url("/history?page=2")


def test_metrics_are_not_served_to_the_outside(proxy: Proxy) -> None:
    response = requests.get(proxy.url("/metrics"), verify=str(proxy.ca_file), timeout=60)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_a_client_by_ip_address_gets_a_certificate_for_127_0_0_1(proxy: Proxy) -> None:
    """A client connecting by IP address (curl https://127.0.0.1:PORT) sends no server name. In the
    container the connection arrives on the container's own address, which has no certificate; 127.0.0.2
    stands in for such an address here. The client checks the certificate against 127.0.0.1."""
    context = ssl.create_default_context(cafile=str(proxy.ca_file))

    with (
        socket.create_connection(("127.0.0.2", proxy.https_port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,  # an IP: sent without SNI
    ):
        certificate = tls.getpeercert()

    assert certificate is not None
    assert ("IP Address", "127.0.0.1") in certificate["subjectAltName"]


def test_a_slow_upload_does_not_hold_the_api(proxy: Proxy) -> None:
    """One client sends half its body and stalls. The API (one thread) must not be waiting on it: the
    proxy holds the partial body, so other requests are answered meanwhile."""
    context = ssl.create_default_context(cafile=str(proxy.ca_file))
    raw = socket.create_connection(("127.0.0.1", proxy.https_port), timeout=60)
    stalled = context.wrap_socket(raw, server_hostname="localhost")
    try:
        head = (
            "POST /forward HTTP/1.1\r\nHost: localhost\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {proxy.max_body // 2}\r\n\r\n"
        )
        stalled.sendall(head.encode() + b"--xyz\r\n" + b"x" * (proxy.max_body // 8))

        answers = [
            requests.get(proxy.url("/health"), verify=str(proxy.ca_file), timeout=30).status_code
            for _ in range(3)
        ]

        assert answers == [200, 200, 200]
    finally:
        stalled.close()


def test_a_forged_forwarded_for_does_not_dodge_the_per_ip_limit(proxy: Proxy) -> None:
    """Caddy replaces the client's X-Forwarded-For with the address it sees, and the API
    (TRUSTED_PROXIES=1) takes that: a client cannot pose as many addresses to escape a per-IP limit."""
    answers = [
        requests.post(
            proxy.url("/register"),
            json={"username": f"forger{i}", "password": "correct horse battery"},
            headers={"X-Forwarded-For": f"203.0.113.{i}"},
            verify=str(proxy.ca_file),
            timeout=60,
        ).status_code
        for i in range(3)
    ]

    assert answers == [201, 201, 429]
