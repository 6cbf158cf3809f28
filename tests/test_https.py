"""HTTPS on the packaged path. A self-signed certificate
made by `make tls-self-signed` (Debian's openssl); nginx serves HTTPS on
https_port, its HTTP port redirects there, the session cookie is Secure and
HSTS is sent, on the service's routes and on Orthanc's."""

import stat
import subprocess

import pytest
import requests

from deploy.nginx import nginx_config
from deploy.trial import Stack, self_signed
from tests.helpers import ADMIN_PASSWORD, free_port, print_log_tails


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory):
    data = tmp_path_factory.mktemp("https") / "data"
    cert, key = self_signed(data, "127.0.0.1")
    site = {
        "http_port": free_port(),
        "https_port": free_port(),
        "orthanc_http_port": free_port(),
        "dicom_port": free_port(),
        "service_port": free_port(),
        "service_workers": 2,
    }
    s = Stack(data, site, env={"AUTHSVC_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        s.start()
    except Exception:
        print_log_tails(s)
        s.stop_all()
        raise
    s.cert = cert
    yield s
    s.stop_all()


@pytest.mark.stack
def test_the_certificate_is_for_the_host_and_its_key_private(tls_stack):
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tls_stack.cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "CA:FALSE" in text
    key = tls_stack.data_dir / "tls" / "key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert tls_stack.site["public_url"].startswith("https://127.0.0.1:")


@pytest.mark.stack
def test_https_answers_with_hsts(tls_stack):
    r = requests.get(tls_stack.https_url + "/api/health", verify=str(tls_stack.cert), timeout=10)
    assert r.status_code == 200
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000"


@pytest.mark.stack
def test_http_redirects_to_https(tls_stack):
    port = tls_stack.site["https_port"]
    for path in ("/", "/staff?x=1", "/orthanc/studies", "/api/login"):
        r = requests.get(tls_stack.public_url + path, allow_redirects=False, timeout=10)
        assert r.status_code == 301, path
        assert r.headers["Location"] == f"https://127.0.0.1:{port}{path}"
    # To public_url's host, whatever Host header the request named.
    r = requests.get(
        tls_stack.public_url + "/staff",
        allow_redirects=False,
        timeout=10,
        headers={"Host": "evil.example"},
    )
    assert r.status_code == 301 and r.headers["Location"] == f"https://127.0.0.1:{port}/staff"
    # Nothing of the service is served on plain HTTP.
    r = requests.post(
        tls_stack.public_url + "/api/login",
        allow_redirects=False,
        timeout=10,
        json={"username": "admin", "password": ADMIN_PASSWORD},
    )
    assert r.status_code == 301 and "Set-Cookie" not in r.headers


@pytest.mark.stack
def test_the_session_cookie_is_secure_and_orthanc_routes_send_hsts(tls_stack):
    http = requests.Session()
    verify = str(tls_stack.cert)  # per request: an environment's CA bundle beats Session.verify
    r = http.post(
        tls_stack.https_url + "/api/login",
        timeout=10,
        verify=verify,
        json={"username": "admin", "password": ADMIN_PASSWORD},
    )
    assert r.status_code == 200, r.text
    cookie = next(c for c in http.cookies if c.name == "authsvc_session")
    assert cookie.secure
    assert "Secure" in r.headers["Set-Cookie"] and "HttpOnly" in r.headers["Set-Cookie"]
    r = http.get(tls_stack.https_url + "/orthanc/studies", timeout=10, verify=verify)
    assert r.status_code == 200
    assert r.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert r.headers["Cache-Control"] == "private, no-store"


def test_without_a_certificate_there_is_no_tls(tmp_path):
    from deploy.site import SITE_DEFAULTS

    conf = nginx_config(
        dict(SITE_DEFAULTS, public_url="http://x"),
        {"proxy_password": "p", "forwarded_secret": "f"},
        tmp_path,
    )
    assert "ssl" not in conf and "Strict-Transport-Security" not in conf
    assert "listen 127.0.0.1:8080;" in conf and "return 301" not in conf


def test_a_certificate_without_its_key_is_refused(tmp_path):
    import json

    from deploy.site import load_site

    (tmp_path / "site.json").write_text(json.dumps({"tls_certificate": "c.pem"}))
    with pytest.raises(SystemExit, match="go together"):
        load_site(tmp_path)


def test_the_command_makes_a_certificate_for_a_name_and_names_it_in_site_json(tmp_path):
    import json
    import sys

    from tests.launcher import ROOT

    data = tmp_path / "data"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.trial",
            "self-signed",
            "--data-dir",
            str(data),
            "--host",
            "pacs.hospital.ve",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert "https://pacs.hospital.ve:" in out.stdout
    site = json.loads((data / "site.json").read_text())
    assert (site["tls_certificate"], site["tls_key"]) == ("tls/certificate.pem", "tls/key.pem")
    text = subprocess.run(
        ["openssl", "x509", "-in", str(data / "tls" / "certificate.pem"), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:pacs.hospital.ve" in text
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "deploy.trial",
            "self-signed",
            "--data-dir",
            str(data),
            "--host",
            "x; rm -rf /",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode != 0 and "not an IP address or a host name" in bad.stderr
