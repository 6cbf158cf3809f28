"""X-Forwarded-For is believed from nginx only, which proves itself
with a secret header (`forwarded_secret`); a local process that connects to
the service's port is just another client, limited as its own address.
(The same through the real stack: tests/test_hardening_stack.py.)"""

import pytest

from authsvc.models import AuditEvent
from tests.helpers import service_app

SECRET = "f" * 43


@pytest.fixture
def proxied_app(tmp_path, database_url):
    with service_app(tmp_path, database_url, forwarded_secret=SECRET) as application:
        yield application


def guess(client, n, headers):
    return client.post(
        "/api/login", json={"patient_id": f"X{n}", "password": "wrong-guess"}, headers=headers
    )


def failed_addresses():
    return [e.address for e in AuditEvent.select().where(AuditEvent.event == "login_failed")]


def test_a_local_process_forging_x_forwarded_for_is_limited_as_itself(proxied_app):
    """From 127.0.0.1 (TRUSTED_PROXIES) but without nginx's secret: each
    guess claims another address, and all count on 127.0.0.1."""
    client = proxied_app.test_client()
    codes = [
        guess(client, n, {"X-Forwarded-For": f"198.51.100.{n}"}).status_code for n in range(25)
    ]
    assert codes[:20] == [401] * 20 and set(codes[20:]) == {429}
    assert set(failed_addresses()) == {"127.0.0.1"}


def test_a_wrong_secret_is_no_proof(proxied_app):
    client = proxied_app.test_client()
    guess(client, 1, {"X-Forwarded-For": "198.51.100.1", "X-Authsvc-Proxy": "f" * 42})
    guess(client, 2, {"X-Forwarded-For": "198.51.100.2", "X-Authsvc-Proxy": ""})
    assert failed_addresses() == ["127.0.0.1", "127.0.0.1"]


def test_nginx_with_its_secret_is_believed(proxied_app):
    client = proxied_app.test_client()
    guess(client, 1, {"X-Forwarded-For": "198.51.100.1", "X-Authsvc-Proxy": SECRET})
    assert failed_addresses() == ["198.51.100.1"]


def test_the_secret_is_no_proof_from_a_peer_outside_trusted_proxies(proxied_app):
    client = proxied_app.test_client()
    guess(client, 1, {"X-Forwarded-For": "198.51.100.1", "X-Authsvc-Proxy": SECRET})
    client.post(
        "/api/login",
        json={"patient_id": "X2", "password": "wrong-guess"},
        headers={"X-Forwarded-For": "198.51.100.2", "X-Authsvc-Proxy": SECRET},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert failed_addresses() == ["198.51.100.1", "203.0.113.5"]


def test_routes_never_see_the_secret_header(proxied_app):
    seen = {}

    @proxied_app.get("/api/_echo_headers_for_test")
    def _echo():
        from flask import request

        seen.update(request.headers)
        return "{}"

    proxied_app.test_client().get(
        "/api/_echo_headers_for_test", headers={"X-Authsvc-Proxy": SECRET}
    )
    assert "X-Authsvc-Proxy" not in seen and seen
