"""The docker deployment, as far as it can be checked here: no Docker engine
runs on this machine and Debian ships no Authorization plugin, so the compose
file is validated with Debian's docker-compose, nginx's configuration with
Debian's nginx (`nginx -t`), and the webhook it points at is exercised by
tests/test_webhook_contract.py. The gate nginx asks before the routes the
plugin leaves open is tested here for real."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from authsvc import ingest
from authsvc.cli import ensure_admin
from tests.docker_files import load_commented_json, plugin_config
from tests.helpers import fake_study, free_port

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")


def compose_config(profile):
    env = dict(os.environ, COMPOSE_PROFILES=profile)
    out = subprocess.run(
        [COMPOSE, "-f", str(ROOT / "docker-compose.yml"), "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@pytest.mark.skipif(COMPOSE is None, reason="Debian's docker-compose is installed by `make test`")
@pytest.mark.parametrize("profile", ["sqlite", "postgres"])
def test_compose_file_is_valid_and_keeps_secrets_out(profile):
    config = compose_config(profile)
    services = config["services"]
    text = (ROOT / "docker-compose.yml").read_text()
    for name, service in services.items():
        env = service.get("environment") or {}
        for key in env:
            if re.search(r"SECRET|PASSWORD|TOKEN|_KEY", key) and not key.endswith("_FILE"):
                pytest.fail(f"{name}: {key} holds a secret in the compose file")
        published = [
            str(p.get("published", p) if isinstance(p, dict) else p)
            for p in service.get("ports", [])
        ]
        if name.startswith("orthanc"):
            assert all("8042" not in p for p in published), "Orthanc's HTTP port is published"
        if name.startswith(("authsvc", "postgres")):
            assert not published, f"{name} publishes a port"
    assert "PASSWORD:" not in text.replace("_PASSWORD:", "")
    assert {s["file"] for s in config["secrets"].values()} <= {
        str(ROOT / "secrets" / n) for n in config["secrets"]
    } | {f"./secrets/{n}" for n in config["secrets"]}


def test_orthanc_config_uses_the_plugin_safely():
    config = load_commented_json(ROOT / "deploy" / "docker" / "orthanc.json")
    auth = config["Authorization"]
    # The user profile and the validation URLs, each set alone, through
    # nginx's webhook listener. Never "WebServiceRootUrl" (it also sets the
    # token decoding and creation URLs: the plugin's /auth/tokens/ routes),
    # nor the legacy "WebService".
    assert auth["WebServiceTokenValidationUrl"] == "http://nginx:8099/authz/tokens/validate"
    assert auth["WebServiceUserProfileUrl"] == "http://nginx:8099/authz/user/get-profile"
    for other in (
        "WebServiceRootUrl",
        "WebService",
        "WebServiceTokenDecoderUrl",
        "WebServiceTokenCreationBaseUrl",
        "WebServiceSettingsRolesUrl",
        "ExtraPermissions",
        "EnableAuditLogs",
    ):
        assert other not in auth, other
    # The project's own list (tests/test_docker_permissions.py reads it).
    assert isinstance(auth["Permissions"], list) and auth["Permissions"]
    # The system level (lists, searches, tools) and the study level are asked;
    # the patient level never (rule logins and shares), series and instances
    # are covered by their study. The plugin refuses both settings at once.
    assert "CheckedLevel" not in auth
    assert sorted(auth["UncheckedLevels"]) == ["instance", "patient", "series"]
    assert "UncheckedResources" not in auth and "WebServicePassword" not in auth
    assert "StandardConfigurations" not in auth
    assert config["DicomAlwaysAllowStore"] is False and config["WebDavEnabled"] is False
    assert config["DicomWeb"]["EnableWado"] is False
    load_commented_json(ROOT / "deploy" / "docker" / "site.example" / "modalities.json")


def test_only_staff_profiles_carry_permissions():
    """A permission opens its routes without asking about resources: only
    staff have one. Every profile names every label: plugin 0.11.4 reads
    labels only once a permission matched or the request was let through
    (tests/test_docker_permissions.py; docs/plugin-and-docker.md, "What plugin 0.11.4 does")."""
    from authsvc.decision.principals import BY_KIND, StaffPrincipal
    from authsvc.models import StaffUser
    from authsvc.webhook import _profile

    for kind in ("patient", "rule", "share"):
        profile = _profile(BY_KIND[kind](1))
        assert profile["permissions"] == [] and profile["authorized-labels"] == ["*"], kind
    assert _profile(None)["permissions"] == [] and _profile(None)["authorized-labels"] == ["*"]
    for role, permissions in (("admin", ["all"]), ("radiologist", ["view"])):
        staff = StaffPrincipal(
            1, staff=StaffUser(username="u", role=role, active=True, password_hash="")
        )
        assert _profile(staff) == {
            "name": "u",
            "permissions": permissions,
            "authorized-labels": ["*"],
        }


OID = "0473d9ec-1971156a-8a763313-b599e788-fe57b70d"


def test_unchecked_folders_hold_viewer_files_only():
    """GET paths under these are never asked about: the viewers' own HTML,
    JS and CSS, no route that names a patient's data."""
    from authsvc.decision.routes import Kind, parse

    folders = plugin_config()["UncheckedFolders"]
    assert set(folders) == {"/web-viewer/app/", "/web-viewer/libs/", "/stone-webviewer/"}
    data_routes = [
        f"/web-viewer/series/{OID}",
        f"/web-viewer/is-stable-series/{OID}",
        f"/web-viewer/instances/jpeg95-{OID}_0",
        f"/studies/{OID}",
        "/dicom-web/studies/1.2.3",
        "/stone-webviewer-data/x",
    ]
    for folder in folders:
        assert folder.endswith("/")
        assert not any(route.startswith(folder) for route in data_routes), folder
    for asset in (
        "/web-viewer/app/viewer.html",
        "/web-viewer/libs/jquery.min.js",
        "/stone-webviewer/index.html",
    ):
        assert parse("GET", asset).kind is Kind.ASSET, asset


def test_nginx_config_is_valid(tmp_path):
    conf = (ROOT / "deploy" / "docker" / "nginx.conf").read_text()
    # Container paths -> this test's folder (first /tmp/: the clone may be under it).
    conf = conf.replace("/tmp/", str(tmp_path) + "/")
    conf = conf.replace("/etc/nginx/locations.inc", str(ROOT / "deploy/docker/locations.inc"))
    conf = conf.replace("/etc/nginx/site/*.conf", str(tmp_path / "site/*.conf"))
    (tmp_path / "nginx.conf").write_text(conf)
    out = subprocess.run(
        [
            "nginx",
            "-t",
            "-c",
            str(tmp_path / "nginx.conf"),
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr


# -- the gate nginx asks (authsvc/gate.py), in-process --------------------------


@pytest.fixture
def gate(app):
    a = fake_study("P-1", "1")
    pw = ingest.store_study(a["study_orthanc_id"], a)
    b = fake_study("P-2", "2")
    ingest.store_study(b["study_orthanc_id"], b)
    patient = app.test_client()
    assert patient.post("/api/login", json={"patient_id": "P-1", "password": pw}).status_code == 200
    ensure_admin("admin", "admin password long enough")
    admin = app.test_client()
    admin.post("/api/login", json={"username": "admin", "password": "admin password long enough"})
    # No Orthanc here: the check's questions to it (which studies Orthanc
    # files under a patient or a UID) answered from what was stored, as the
    # real one does on the stack (tests/test_confinement.py, test_identity_stack.py).
    held = {
        a["patient_orthanc_id"]: {a["study_orthanc_id"]},
        b["patient_orthanc_id"]: {b["study_orthanc_id"]},
    }
    orthanc = app.extensions["authsvc"].orthanc
    orthanc.studies_of_patient = lambda oid, timeout: held[oid]
    orthanc.studies_with_uid = lambda uid, timeout: {
        d["study_orthanc_id"] for d in (a, b) if d["tags"]["StudyInstanceUID"] == uid
    }
    return {
        "patient": patient,
        "admin": admin,
        "anonymous": app.test_client(),
        "own": a["patient_orthanc_id"],
        "other": b["patient_orthanc_id"],
        "study_uid": a["tags"]["StudyInstanceUID"],
        "held": held,
        "own_study": a["study_orthanc_id"],
    }


def ask(client, uri, method="GET"):
    """As nginx asks: the session's token in the `token` header (nginx's
    $orthanc_token), never the cookie."""
    cookie = client.get_cookie("authsvc_session")
    headers = {"X-Original-URI": uri, "X-Original-Method": method}
    if cookie is not None:
        headers["token"] = cookie.value
    return client.get("/api/gate", headers=headers).status_code


def test_gate_refuses_what_orthanc_holds_beyond_the_recorded_studies(gate):
    """A study Orthanc files under the patient, or under the UID, that the
    service has not recorded (not stable yet, refused, in conflict) is no
    study of the patient's: the patient level and DICOMweb are refused."""
    own = f"/orthanc/patients/{gate['own']}"
    qido = f"/orthanc/dicom-web/studies?StudyInstanceUID={gate['study_uid']}"
    assert ask(gate["patient"], own) == 204 and ask(gate["patient"], qido) == 204
    gate["held"][gate["own"]].add("57000000-ffffffff-00000000-00000000-00000000")
    assert ask(gate["patient"], own) == 403
    assert ask(gate["patient"], own + "/archive") == 403
    assert ask(gate["patient"], "/orthanc/dicom-web/studies?PatientID=P-1") == 403
    assert ask(gate["admin"], own) == 204  # staff see everything anyway


def test_gate_refuses_unfiltered_searches_and_other_patients(gate):
    for uri in [
        "/orthanc/dicom-web/studies",
        "/orthanc/dicom-web/studies?PatientID=P-2",
        "/orthanc/dicom-web/series",
        "/orthanc/dicom-web/instances/",
        f"/orthanc/patients/{gate['other']}",
        "/orthanc/patients",
        f"/orthanc/patients/{gate['other']}/archive",
        "/dicom-web/studies",
        "",
    ]:
        assert ask(gate["patient"], uri) == 403, uri
        assert ask(gate["anonymous"], uri) == 403, uri
    assert ask(gate["patient"], f"/orthanc/patients/{gate['own']}") == 204
    assert ask(gate["patient"], f"/orthanc/patients/{gate['own']}", "DELETE") == 403
    assert ask(gate["patient"], f"/orthanc/patients/{gate['own']}", "HEAD") == 204
    assert ask(gate["admin"], "/orthanc/dicom-web/studies?PatientName=*") == 204
    assert ask(gate["admin"], f"/orthanc/patients/{gate['other']}", "DELETE") == 204


@pytest.mark.stack
def test_the_plugins_webhook_listener_gives_up_on_a_hung_service(tmp_path):
    """Plugin 0.11.4 waits 10 s for each answer and may ask twice per request
    (the user profile, then the validation); through nginx's listener a hung
    service (it accepts, never answers) costs 1 s and a 504 each, which the
    plugin answers with a 403: under 3 s in all. Nothing else is served."""
    import socket
    import time

    import requests

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # the kernel accepts; nobody ever reads or answers
    port = free_port()
    conf = (ROOT / "deploy" / "docker" / "nginx.conf").read_text()
    conf = conf.replace("/tmp/", str(tmp_path) + "/")
    conf = conf.replace("/etc/nginx/locations.inc", str(ROOT / "deploy/docker/locations.inc"))
    conf = conf.replace("/etc/nginx/site/*.conf", str(tmp_path / "site/*.conf"))
    conf = conf.replace("resolver 127.0.0.11 valid=10s ipv6=off;", "")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{free_port()};")
    conf = conf.replace("listen 8099;", f"listen 127.0.0.1:{port};")
    conf = conf.replace(
        "set $authsvc http://authsvc:8000;",
        f"set $authsvc http://127.0.0.1:{hung.getsockname()[1]};",
    )
    conf = conf.replace("error_log /dev/stderr warn;", f"error_log {tmp_path}/error.log warn;")
    conf = conf.replace("access_log /dev/stdout noquery;", "access_log off;")
    (tmp_path / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [
            "nginx",
            "-c",
            str(tmp_path / "nginx.conf"),
            "-p",
            str(tmp_path),
            "-e",
            str(tmp_path / "error.log"),
            "-g",
            "daemon off;",
        ]
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while True:
            try:
                requests.get(base + "/", timeout=1)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        for other in ("/authz/tokens/decode", "/authz/", "/authz/settings/roles", "/api/gate"):
            assert requests.post(base + other, json={}, timeout=5).status_code == 404, other
        spent = 0.0
        for path in ("/authz/user/get-profile", "/authz/tokens/validate"):
            start = time.monotonic()
            r = requests.post(
                base + path, json={"level": "study"}, auth=("orthanc", "x"), timeout=15
            )
            took = time.monotonic() - start
            assert r.status_code == 504, path
            assert 0.8 < took < 1.5, (path, took)
            spent += took
        assert spent < 3
    finally:
        proc.terminate()
        proc.wait(10)
        hung.close()
