"""A public_url that names this server only (the default,
http://127.0.0.1:8080) is said loud: by `make run`'s start message, a banner
on every staff page, a slip marked void, and `make doctor`'s first-day checks
(deploy/doctor.py)."""

import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from authsvc import ingest, publicurl
from authsvc.cli import ensure_admin
from authsvc.db import database
from deploy import doctor
from deploy.site import SITE_DEFAULTS
from deploy.trial import startup_warnings
from tests.helpers import fake_study
from tests.pages_world import STAFF_PAGES, STAFF_PASSWORD, make_app, staff_client

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "url, bad",
    [
        ("http://127.0.0.1:8080", True),
        ("http://localhost:8080/", True),
        ("http://127.1.2.3", True),
        ("http://[::1]:8080", True),
        ("http://0.0.0.0:8080", True),
        ("", True),
        ("not a url", True),
        ("http://10.0.0.5:8080", False),
        ("https://pacs.hospital.ve", False),
        ("https://192.168.1.20", False),
    ],
)
def test_unusable_public_urls(url, bad):
    assert publicurl.unusable(url) is bad


def _site_app(tmp_path, database_url, public_url):
    app = make_app(tmp_path, database_url, PUBLIC_URL=public_url)
    s = fake_study("P-1", "1", name="NÚÑEZ^JOSÉ")
    ingest.store_study(s["study_orthanc_id"], s)
    ensure_admin("admin", STAFF_PASSWORD)
    return app


@pytest.fixture
def loopback_site(tmp_path, database_url):
    app = _site_app(tmp_path, database_url, "http://127.0.0.1:8080")
    yield app
    if not database.is_closed():
        database.close()


@pytest.fixture
def lan_site(tmp_path, database_url):
    app = _site_app(tmp_path, database_url, "https://pacs.hospital.ve")
    yield app
    if not database.is_closed():
        database.close()


@pytest.mark.parametrize(
    "lang, text", [("es", "funciona solo en este servidor"), ("en", "works on this server only")]
)
def test_every_staff_page_warns_of_a_loopback_public_url(loopback_site, lang, text):
    c = staff_client(loopback_site, lang=lang)
    for page in STAFF_PAGES:
        body = c.get(page).get_data(as_text=True)
        assert 'id="public-url-warning"' in body, page
        assert "http://127.0.0.1:8080" in body and text in body and "public_url" in body, page
    # The patients' side does not carry the staff's warning.
    assert 'id="public-url-warning"' not in loopback_site.test_client().get("/").get_data(
        as_text=True
    )


def test_no_banner_with_a_real_public_url(lan_site):
    c = staff_client(lan_site)
    for page in STAFF_PAGES:
        assert 'id="public-url-warning"' not in c.get(page).get_data(as_text=True), page
    slip = c.get("/staff/slips/P-1").get_data(as_text=True)
    assert 'id="slip"' in slip and 'id="slip-void"' not in slip and "slip-void" not in slip


@pytest.mark.parametrize("lang, text", [("es", "NO VÁLIDA"), ("en", "NOT VALID")])
def test_a_slip_with_a_loopback_address_is_marked_void(loopback_site, lang, text):
    slip = (
        staff_client(loopback_site).get(f"/staff/slips/P-1?slip_lang={lang}").get_data(as_text=True)
    )
    assert 'class="slip layout-a6 slip-void"' in slip
    assert 'id="slip-void"' in slip and text in slip
    css = (ROOT / "authsvc" / "static" / "style.css").read_text()
    assert ".slip.slip-void #slip-url { text-decoration: line-through; }" in css


def test_make_run_start_message_names_public_url(tmp_path):
    site = dict(SITE_DEFAULTS, public_url="http://127.0.0.1:8080")
    [warning] = startup_warnings(site, tmp_path)
    assert "public_url" in warning and "http://127.0.0.1:8080" in warning
    assert str(tmp_path / "site.json") in warning
    assert startup_warnings(dict(site, public_url="https://pacs.hospital.ve"), tmp_path) == []


def _write_site(data, **site):
    data.mkdir(exist_ok=True)
    (data / "site.json").write_text(json.dumps(site))
    (data / "secrets.json").write_text(json.dumps({"orthanc_password": "x"}))
    os.chmod(data / "secrets.json", 0o600)
    os.chmod(data / "site.json", 0o600)


def _doctor(data):
    out = subprocess.run(
        [sys.executable, "-m", "deploy.trial", "doctor", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    lines = {line.split(":")[0]: line for line in out.stdout.splitlines() if ":" in line}
    return out.returncode, lines, out.stdout


def test_doctor_warns_on_a_default_site(tmp_path):
    data = tmp_path / "data"
    _write_site(data)
    (data / "logs").mkdir()
    leaky = data / "logs" / "authsvc.log"
    leaky.write_text("x")
    os.chmod(leaky, 0o644)
    code, lines, out = _doctor(data)
    assert code == 1, out
    assert lines["WARN  public_url"].count("http://127.0.0.1:8080") == 1, out
    assert "WARN  modalities" in lines and "WARN  https" in lines and "WARN  http_address" in lines
    assert "logs/authsvc.log" in lines["WARN  permissions"], out
    assert any(k.endswith("orthanc") for k in lines), out
    assert out.rstrip().endswith("warning(s)")


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_doctor_on_a_configured_site(tmp_path, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # A name that is not loopback yet reaches this machine: the host's own
    # name is not known here, so the check of reachability is given the URL.
    data = tmp_path / "data"
    _write_site(
        data,
        http_address="0.0.0.0",
        public_url="http://pacs.hospital.ve",
        modalities={"CT1": {"host": "10.0.0.7", "port": 104}},
        authsvc={"HOSPITAL_NAME": "Hospital Universitario de Caracas"},
    )
    real_get = doctor.requests.get
    monkeypatch.setattr(
        doctor.requests,
        "get",
        lambda url, **kw: real_get(
            url.replace("http://pacs.hospital.ve", f"http://127.0.0.1:{server.server_port}"), **kw
        ),
    )
    try:
        results = {what: (level, text) for level, what, text in doctor.checks(data)}
    finally:
        server.shutdown()
    assert results["public_url"][0] == "ok", results
    assert results["modalities"] == ("ok", "CT1")
    assert results["http_address"][0] == "ok" and results["HOSPITAL_NAME"][0] == "ok"
    assert results["permissions"][0] == "ok", results
    assert results["https"][0] == "WARN"  # still HTTP only
    # Unreachable, and a disk nearly full.
    monkeypatch.setattr(doctor.requests, "get", real_get)
    monkeypatch.setattr(
        doctor.shutil,
        "disk_usage",
        lambda path: type("U", (), {"total": 100 * 1024**3, "free": 2 * 1024**3})(),
    )
    _write_site(data, public_url="http://pacs.invalid")  # a name that never resolves
    results = {what: (level, text) for level, what, text in doctor.checks(data)}
    assert results["disk"][0] == "WARN" and "2.0 GiB" in results["disk"][1]
    assert results["public_url"][0] == "WARN" and "unreachable" in results["public_url"][1]


def test_doctor_warns_of_a_certificate_about_to_expire(tmp_path):
    from deploy.trial import self_signed

    data = tmp_path / "data"
    _write_site(data)
    self_signed(data, "10.0.0.5", days=10)
    results = {what: (level, text) for level, what, text in doctor.checks(data)}
    assert results["tls_certificate"][0] == "WARN" and "30 days" in results["tls_certificate"][1]
    assert results["https"][0] == "ok" and "https://127.0.0.1:8443" in results["public_url"][1]
    self_signed(data, "10.0.0.5", days=400)
    results = {what: (level, text) for level, what, text in doctor.checks(data)}
    assert results["tls_certificate"][0] == "ok"
