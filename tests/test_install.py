"""`make install` for a real server, into a temporary root
(`python -m deploy.install install --root DIR`, what `make install` runs with
--root /), so that the test touches neither /etc nor systemd:

- its units pass `systemd-analyze verify` (Debian's orthanc.service with the
  install's drop-in, found through SYSTEMD_UNIT_PATH);
- its user (made by systemd-sysusers in the root's /etc/passwd), paths and
  modes: nothing under the data folder readable by others, the display key
  apart from it and readable by the service's user only;
- the installed system, started as its units say (tests/unitfile.py: the same
  command lines, users through setpriv, environment files; nginx is Debian's
  nginx.conf with the root's sites-enabled), receives a study by storescu,
  gives its patient a login, and answers through nginx;
- `make install` again (the upgrade) keeps the data and the secrets and
  applies a migration the database lacks; uninstall leaves settings and data.

Needs root (setpriv, chown): CI runs as root."""

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from deploy.doctor import world_readable
from deploy.install import NAME, Layout
from tests import unitfile
from tests.dicom_samples import SeriesSpec, StudySpec, storescu, write_study
from tests.helpers import ADMIN_PASSWORD, ON_POSTGRES, Browser, free_port, wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="installs as root (setpriv, chown)"),
    # The install's own database is SQLite here; on PostgreSQL the service
    # runs the same code as under `make run`, which that run covers.
    pytest.mark.skipif(ON_POSTGRES, reason="the install test runs once, on SQLite"),
]

DEBIAN_ORTHANC_UNIT = Path("/lib/systemd/system/orthanc.service")


def run_installer(root, *args, **env):
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "deploy.install", *args, "--root", str(root)],
        env=dict(os.environ, **env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    print(f"deploy.install {args[0]}: {time.monotonic() - started:.1f} s")
    return result.stdout


@pytest.fixture(scope="module")
def installed():
    # Under /tmp, not pytest's 0700 folder: the service's users must reach it.
    root = Path(tempfile.mkdtemp(prefix="install-root-", dir="/tmp"))
    os.chmod(root, 0o755)
    # What a Debian server has before `make install`: its users (orthanc,
    # www-data; no password hashes copied), Debian's orthanc.service, nginx's folders.
    (root / "etc").mkdir()
    for name in ("passwd", "group"):
        shutil.copy(f"/etc/{name}", root / "etc" / name)
    (root / "lib/systemd/system").mkdir(parents=True)
    shutil.copy(DEBIAN_ORTHANC_UNIT, root / "lib/systemd/system")
    for sub in ("sites-available", "sites-enabled", "conf.d"):
        (root / "etc/nginx" / sub).mkdir(parents=True)
    (root / "var/log/nginx").mkdir(parents=True)
    (root / "run").mkdir()
    layout = Layout(root)
    # IT's site.json (the install keeps it): free loopback ports.
    site = {
        "http_address": "127.0.0.1",
        "http_port": free_port(),
        "service_port": free_port(),
        "orthanc_http_port": free_port(),
        "dicom_port": free_port(),
        "stable_age_seconds": 1,
        "service_workers": 2,
        "modalities": {"STORESCU": {"host": "127.0.0.1", "port": 104}},
        "authsvc": {"CHANGES_POLL_SECONDS": 2, "HOSPITAL_NAME": "Hospital de prueba"},
    }
    layout.etc.mkdir(parents=True)
    (layout.etc / "site.json").write_text(json.dumps(site))
    out = run_installer(root, "install", AUTHSVC_ADMIN_PASSWORD=ADMIN_PASSWORD)
    yield {"root": root, "layout": layout, "site": site, "out": out}
    shutil.rmtree(root, ignore_errors=True)


def owner(path):
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_units_pass_systemd_analyze_verify(installed):
    layout = installed["layout"]
    result = subprocess.run(
        ["systemd-analyze", "verify", str(layout.unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    # Debian's orthanc.service with the drop-in, as systemd would find both.
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{layout.at('/etc/systemd/system')}:")
    result = subprocess.run(
        ["systemd-analyze", "verify", "orthanc.service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def exposure(unit, env=None):
    """systemd-analyze security's overall exposure (0 safest .. 10), offline."""
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", unit],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    line = next(s for s in result.stdout.splitlines() if "Overall exposure level" in s)
    print(line)
    return float(line.split(":")[1].split()[0])


def test_units_are_sandboxed(installed):
    """The service's unit rates OK (below 2.5) in systemd-analyze security;
    Orthanc with the drop-in below 4 (Debian's unit alone: 9.2, UNSAFE)."""
    layout = installed["layout"]
    assert exposure(str(layout.unit)) < 2.5
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{layout.at('/etc/systemd/system')}:")
    assert exposure("orthanc.service", env) < 4.0
    assert exposure(str(DEBIAN_ORTHANC_UNIT)) > 6.0  # what the drop-in improves on


def test_units_say_what_a_server_needs(installed):
    layout = installed["layout"]
    service = unitfile.read_service(layout.unit)
    assert service["User"] == "authsvc" and service["Restart"] == "on-failure"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["ReadWritePaths"] == [str(layout.service_data)]
    assert "WantedBy=multi-user.target" in layout.unit.read_text()
    orthanc = unitfile.read_service(
        installed["root"] / "lib/systemd/system/orthanc.service", layout.orthanc_dropin
    )
    # Debian's unit and user, one Orthanc, the project's configuration folder.
    assert orthanc["User"] == "orthanc" and orthanc["Restart"] == "on-failure"
    assert orthanc["ExecStart"] == [f"/usr/sbin/Orthanc {layout.etc / 'orthanc'}"]
    assert orthanc["UMask"] == "0077"
    assert os.readlink(layout.nginx_link) == str(layout.nginx_site)


def test_user_paths_and_modes(installed):
    root, layout = installed["root"], installed["layout"]
    user = unitfile.passwd_entry(root, "authsvc")
    assert user["uid"] < 1000 and user["shell"] == "/usr/sbin/nologin"
    uid, gid = user["uid"], unitfile.group_id(root, "authsvc")
    orthanc = unitfile.passwd_entry(root, "orthanc")
    key = layout.key_file
    assert not key.resolve().is_relative_to(layout.data.resolve())
    assert owner(key) == (uid, gid, 0o600)
    assert owner(key.parent) == (uid, gid, 0o700)
    assert len(key.read_text().strip()) >= 43
    assert owner(layout.etc / "secrets.json") == (0, gid, 0o640)
    assert owner(layout.etc / "orthanc" / "local.json") == (0, orthanc["gid"], 0o640)
    assert owner(layout.etc / "authsvc.json") == (0, gid, 0o640)
    assert owner(layout.nginx_site) == (0, 0, 0o600)
    assert owner(layout.etc / "site.json") == (0, 0, 0o600)
    assert owner(layout.service_data) == (uid, gid, 0o700)
    assert owner(layout.data / "orthanc") == (orthanc["uid"], orthanc["gid"], 0o700)
    assert owner(layout.data)[2] == 0o711
    assert world_readable(layout.data) == []
    config = json.loads((layout.etc / "authsvc.json").read_text())
    assert config["DISPLAY_KEY_FILE"] == str(key)
    assert config["DATABASE_URL"] == f"sqlite:///{layout.service_data / 'authsvc.sqlite3'}"
    from authsvc.migrations import MIGRATIONS

    every = sorted(version for version, _ in MIGRATIONS)
    assert f"migrations applied: {every}" in installed["out"]


class System:
    """The three services of an installed root, started as their units say."""

    def __init__(self, installed):
        self.root, self.layout, self.site = (
            installed["root"],
            installed["layout"],
            installed["site"],
        )
        self.logs = self.root / "test-logs"
        self.logs.mkdir(exist_ok=True)
        self.procs = {}

    def nginx_conf(self):
        """Debian's own nginx.conf, its paths moved into the root."""
        conf = Path("/etc/nginx/nginx.conf").read_text()
        for path in (
            "/etc/nginx/sites-enabled/",
            "/etc/nginx/conf.d/",
            "/var/log/nginx/",
            "/run/nginx.pid",
        ):
            conf = conf.replace(
                path, str(self.layout.at(path)) + ("/" if path.endswith("/") else "")
            )
        target = self.root / "test-nginx.conf"
        target.write_text(conf)
        return target

    def start(self):
        secrets = json.loads((self.layout.etc / "secrets.json").read_text())
        self.orthanc_auth = ("authsvc", secrets["orthanc_password"])
        orthanc = unitfile.read_service(
            self.root / "lib/systemd/system/orthanc.service", self.layout.orthanc_dropin
        )
        self.procs["orthanc"] = unitfile.start(orthanc, self.root, self.logs / "orthanc.log")
        self.wait(
            f"http://127.0.0.1:{self.site['orthanc_http_port']}/system",
            "orthanc",
            auth=self.orthanc_auth,
        )
        service = unitfile.read_service(self.layout.unit)
        self.procs["authsvc"] = unitfile.start(service, self.root, self.logs / "authsvc.log")
        self.wait(f"http://127.0.0.1:{self.site['service_port']}/api/health", "authsvc")
        # Debian's nginx.service: nginx as root, its workers www-data (nginx.conf).
        nginx = [
            "/usr/sbin/nginx",
            "-e",
            str(self.layout.nginx_logs / "error.log"),
            "-c",
            str(self.nginx_conf()),
            "-g",
            "daemon off; master_process on;",
        ]
        check = subprocess.run(nginx[:-2] + ["-t", "-q"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        with open(self.logs / "nginx.log", "ab") as log:
            self.procs["nginx"] = subprocess.Popen(
                nginx, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait(self.public_url + "/api/health", "nginx")

    @property
    def public_url(self):
        return f"http://127.0.0.1:{self.site['http_port']}"

    def wait(self, url, name, auth=None, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                self.print_logs()
                raise AssertionError(f"{name} exited with {self.procs[name].returncode}")
            try:
                if requests.get(url, auth=auth, timeout=2).status_code < 500:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.print_logs()
        raise AssertionError(f"{name} did not answer within {timeout} s")

    def print_logs(self):
        for log in sorted(self.logs.glob("*.log")):
            print(
                f"===== {log.name}\n"
                + "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            )

    def stop(self):
        for name in ("nginx", "authsvc", "orthanc"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                unitfile.stop(proc)


@pytest.fixture(scope="module")
def system(installed):
    s = System(installed)
    try:
        s.start()
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def received(system, tmp_path_factory):
    """A study sent by storescu to the installed Orthanc, and its patient's login."""
    started = time.monotonic()
    spec = StudySpec(
        f"PI-{uuid.uuid4().hex[:6]}", "INSTALADO^PACIENTE", series=[SeriesSpec("CT", 2, {})]
    )
    written = write_study(spec, tmp_path_factory.mktemp("dicom"))
    sent = storescu(written.files, system.site["dicom_port"])
    assert sent.returncode == 0, sent.stderr
    admin = Browser(system.public_url)
    assert admin.login(username="admin", password=ADMIN_PASSWORD).status_code == 200
    row = wait_for(
        lambda: next(
            (
                s
                for s in admin.get("/api/studies").json()["studies"]
                if s["patient_id"] == spec.patient_id
            ),
            None,
        ),
        60,
        what="the study recorded by the installed service",
    )
    print(f"study stored to login: {time.monotonic() - started:.1f} s")
    r = admin.post(f"/api/patients/{spec.patient_id}/credentials", json={})
    assert r.status_code == 200, r.text
    return {
        "row": row,
        "pid": spec.patient_id,
        "password": r.json()["password"],
        "study_uid": written.study_uid,
    }


@pytest.mark.stack
def test_installed_system_gives_a_received_study_its_login_through_nginx(system, received):
    assert received["row"]["patient_has_login"] is True
    patient = Browser(system.public_url)
    r = patient.login(patient_id=received["pid"], password=received["password"])
    assert r.status_code == 200, r.text
    studies = patient.get("/api/studies").json()["studies"]
    assert [s["study_instance_uid"] for s in studies] == [received["study_uid"]], studies
    page = patient.get("/portal")
    assert page.status_code == 200 and "Hospital de prueba" in page.text
    # Orthanc behind nginx's check and the Lua filter, as the installed units run them.
    orthanc_id = received["row"]["orthanc_id"]
    assert patient.get(f"/orthanc/studies/{orthanc_id}").status_code == 200
    assert Browser(system.public_url).get(f"/orthanc/studies/{orthanc_id}").status_code == 403


@pytest.mark.stack
def test_the_installed_command_backs_up_as_the_service_user(system, received):
    """/usr/local/sbin/orthanc-patient-access backup: `make backup` of a server."""
    done = subprocess.run(
        [str(system.layout.command), "backup"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": unitfile.SYSTEMD_PATH},
    )
    assert done.returncode == 0, done.stderr
    backup = Path(done.stdout.strip().rsplit(" ", 1)[-1])
    assert backup.parent == system.layout.service_data / "backups"
    uid = unitfile.passwd_entry(system.root, "authsvc")["uid"]
    assert owner(backup)[0] == uid and owner(backup)[2] == 0o600
    assert owner(backup.parent)[2] == 0o700
    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM patient WHERE patient_id = ?", (received["pid"],)
        ).fetchone() == (1,)


@pytest.mark.stack
def test_after_a_run_nothing_under_the_data_folder_is_readable_by_others(system, received):
    layout = system.layout
    names = {p.relative_to(layout.data).as_posix() for p in layout.data.rglob("*")}
    assert "authsvc/authsvc.sqlite3" in names
    assert any(n.startswith("authsvc/backups/authsvc-") for n in names), names
    assert any(n.startswith("orthanc/storage/") and n.count("/") >= 3 for n in names), names
    assert world_readable(layout.data) == []
    orthanc = unitfile.passwd_entry(system.root, "orthanc")
    stored = [p for p in (layout.data / "orthanc" / "storage").rglob("*") if p.is_file()]
    assert stored and all(owner(p)[0] == orthanc["uid"] and owner(p)[2] == 0o600 for p in stored)
    db = layout.service_data / "authsvc.sqlite3"
    assert owner(db)[0] == unitfile.passwd_entry(system.root, "authsvc")["uid"]
    key = layout.key_file.read_bytes().strip()
    for path in layout.data.rglob("*"):
        if path.is_file():
            assert key not in path.read_bytes(), path


@pytest.mark.stack
def test_doctor_checks_the_installed_server(system, received):
    """`make doctor-server`: site.json from /etc, the data folder's files."""

    def doctor():
        return subprocess.run(
            [sys.executable, "-m", "deploy.install", "doctor", "--root", str(system.root)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    result = doctor()
    assert f"ok    permissions: no file under {system.layout.data}" in result.stdout, result.stdout
    assert "ok    HOSPITAL_NAME: Hospital de prueba" in result.stdout
    assert "info  orthanc:" in result.stdout and "(running)" in result.stdout
    assert result.returncode == 1  # loopback public_url, HTTP only: warned
    stray = system.layout.service_data / "copied-by-hand.sqlite3"
    stray.write_text("")
    os.chmod(stray, 0o644)
    try:
        assert "WARN  permissions: 1 file(s)" in doctor().stdout
    finally:
        stray.unlink()


@pytest.mark.stack
def test_nginx_logs_where_debian_keeps_them_without_query_strings(system, received):
    Browser(system.public_url).get("/api/health?token=secret-in-a-query")
    logs = system.layout.nginx_logs
    ours = (logs / f"{NAME}.access.log").read_text()
    assert "/api/health" in ours and "secret-in-a-query" not in ours
    # Debian's http-level access_log (with query strings) gets none of ours.
    debian = logs / "access.log"
    assert not debian.exists() or "/api/health" not in debian.read_text()


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.stack
def test_upgrade_keeps_the_data_and_applies_migrations(installed, system, received):
    system.stop()
    layout = installed["layout"]
    kept = {
        p: sha(p) for p in (layout.key_file, layout.etc / "secrets.json", layout.etc / "site.json")
    }
    db = layout.service_data / "authsvc.sqlite3"
    # A database from before migration 7 (a Resource's content column).
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM schemaversion WHERE version = 7")
        columns = [row[1] for row in conn.execute("PRAGMA table_info(resource)")]
        assert "content" in columns
        conn.execute("ALTER TABLE resource DROP COLUMN content")
    # The venv is the first install's (pip's part was run once above).
    out = run_installer(installed["root"], "install", "--venv", str(layout.opt / "venv"))
    assert "migrations applied: [7]" in out, out
    assert {p: sha(p) for p in kept} == kept
    with sqlite3.connect(db) as conn:
        assert "content" in [row[1] for row in conn.execute("PRAGMA table_info(resource)")]
    assert world_readable(layout.data) == []
    system.start()
    patient = Browser(system.public_url)
    assert (
        patient.login(patient_id=received["pid"], password=received["password"]).status_code == 200
    )
    admin = Browser(system.public_url)
    assert admin.login(username="admin", password=ADMIN_PASSWORD).status_code == 200
    assert any(
        s["patient_id"] == received["pid"] for s in admin.get("/api/studies").json()["studies"]
    )
    system.stop()


@pytest.mark.stack
def test_uninstall_removes_the_programs_and_leaves_the_data(installed, system):
    system.stop()
    layout = installed["layout"]
    run_installer(installed["root"], "uninstall")
    for path in (
        layout.unit,
        layout.orthanc_dropin,
        layout.nginx_site,
        layout.nginx_link,
        layout.opt,
        layout.command,
    ):
        assert not path.exists() and not path.is_symlink(), path
    for path in (
        layout.key_file,
        layout.etc / "secrets.json",
        layout.etc / "site.json",
        layout.service_data / "authsvc.sqlite3",
    ):
        assert path.exists(), path
    assert any(p.is_file() for p in (layout.data / "orthanc" / "storage").rglob("*"))
