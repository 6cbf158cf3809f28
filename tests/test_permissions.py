"""After `make run` has ingested a study and `make backup`
has run, no file under the data folder is readable by other local users
(database, WAL, Orthanc's storage and caches, logs, backups, generated
configuration), and the display key that decrypts the kept passwords lives
outside the data folder and its backups."""

import json
import os
import stat
import subprocess
import sys
import uuid

import pytest

from deploy.doctor import world_readable
from tests.dicom_samples import SeriesSpec, StudySpec, storescu, write_study
from tests.helpers import ADMIN_PASSWORD, Browser, wait_for
from tests.launcher import ROOT, Launcher

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    base = tmp_path_factory.mktemp("perms")
    data = base / "data"
    data.mkdir()
    # A data folder made by an earlier version: display_key in secrets.json,
    # a log readable by all.
    (data / "secrets.json").write_text(json.dumps({"display_key": "k" * 43}))
    (data / "logs").mkdir()
    (data / "logs" / "authsvc.log").write_text("old\n")
    os.chmod(data / "logs" / "authsvc.log", 0o644)
    run = Launcher(data)
    try:
        admin = Browser(f"http://127.0.0.1:{run.site['http_port']}")
        assert admin.login(username="admin", password=ADMIN_PASSWORD).status_code == 200
        written = write_study(
            StudySpec(
                f"PM-{uuid.uuid4().hex[:6]}", "PERMISOS^ARCHIVOS", series=[SeriesSpec("CT", 2, {})]
            ),
            base / "dicom",
        )
        assert storescu(written.files, run.site["dicom_port"]).returncode == 0
        row = wait_for(
            lambda: next(
                (
                    r
                    for r in admin.get("/staff/api/studies").json()["studies"]
                    if r["patient_id"] == written.spec.patient_id
                ),
                None,
            ),
            30,
            what="study recorded",
        )
        # Through the Makefile's command line, as `make backup` runs it.
        out = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "authsvc", "backup"],
            env=dict(os.environ, AUTHSVC_CONFIG=str(data / "authsvc.json")),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        yield {"data": data, "row": row, "base": base}
    finally:
        run.stop()


def test_no_file_under_the_data_folder_is_readable_by_others(ran):
    data = ran["data"]
    names = {p.relative_to(data).as_posix() for p in data.rglob("*")}
    # What there is to protect is there.
    assert {
        "authsvc.sqlite3",
        "secrets.json",
        "site.json",
        "logs/authsvc.log",
        "logs/orthanc.log",
        "logs/nginx-access.log",
        "orthanc/config/local.json",
    } <= names
    assert any(n.startswith("backups/authsvc-") for n in names)
    assert any(n.startswith("orthanc/storage/") and "/" in n[16:] for n in names)
    assert world_readable(data) == []
    for path in data.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_dir() and path.owner() != "www-data":
            assert mode & 0o077 in (0, 0o011), (path, oct(mode))  # traversable at most
        elif path.is_file():
            assert mode & 0o077 == 0, (path, oct(mode))


def test_the_display_key_is_apart_from_the_data_folder_and_the_backups(ran):
    data = ran["data"]
    secrets = json.loads((data / "secrets.json").read_text())
    assert "display_key" not in secrets
    key_file = ran["base"] / "data-keys" / "display-key"
    assert key_file.read_text().strip() == "k" * 43  # moved, not made anew
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    for path in data.rglob("*"):
        if path.is_file():
            assert b"k" * 43 not in path.read_bytes(), path
    # And the service still reads it: the new login's password is shown for its slip.
    assert ran["row"]["login"] == "pending" and ran["row"]["password"]
