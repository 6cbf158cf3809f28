"""Fixtures. `stack` starts the real system (Debian's Orthanc with the
project's Lua, the service under gunicorn, nginx) once per test session in a
temporary folder with free ports, through the same launcher as `make run`."""

import socket
import time

import pytest
import requests

from authsvc.stack import Stack

ADMIN_PASSWORD = "test-admin-Passw0rd-long-enough"
DECISION_CACHE_SECONDS = 2


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Browser:
    """A client of the public entry (nginx), with its own cookie jar."""

    def __init__(self, base_url):
        self.base = base_url
        self.http = requests.Session()

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 10)
        kw.setdefault("allow_redirects", False)
        return self.http.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def login(self, **fields):
        return self.post("/api/login", json=fields)

    def logout(self):
        return self.post("/api/logout", json={})


def print_log_tails(stack, lines=40):
    """On failure, CI shows what the services said (their logs hold no secrets)."""
    for log in sorted(stack.logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"\n===== {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory):
    data = tmp_path_factory.mktemp("stack")
    ports = {k: free_port() for k in ("http_port", "orthanc_http_port", "dicom_port", "service_port")}
    site = dict(ports, stable_age_seconds=1, service_workers=2,
                authsvc={"DECISION_CACHE_SECONDS": DECISION_CACHE_SECONDS,
                         "CHANGES_POLL_SECONDS": 2})
    s = Stack(data, site, env={"AUTHSVC_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        try:
            s.start()
        except Exception:
            print_log_tails(s)
            raise
        yield s
    finally:
        s.stop_all()
        if request.session.testsfailed:
            print_log_tails(s)


@pytest.fixture(scope="session")
def orthanc(stack):
    """Orthanc's REST API directly, as the service's own user (setup and checks only)."""
    http = requests.Session()
    http.auth = ("authsvc", stack.secrets["orthanc_password"])
    http.base = stack.orthanc_url
    return http


@pytest.fixture
def browser(stack):
    return Browser(stack.public_url)


@pytest.fixture(scope="session")
def admin(stack):
    b = Browser(stack.public_url)
    r = b.login(username="admin", password=ADMIN_PASSWORD)
    assert r.status_code == 200, r.text
    return b
