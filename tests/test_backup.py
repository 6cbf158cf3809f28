"""Backups taken while the service writes, and the restore procedure, on the
database the tests run on (SQLite, or PostgreSQL in the second CI pass), and
on the real stack through the commands docs/backups.md gives."""

import os
import subprocess
import sys
import threading

import pytest

from authsvc import backup, ingest
from authsvc.db import database
from authsvc.models import Patient, Study
from tests.helpers import ADMIN_PASSWORD, Browser, fake_study, stack_sql


def test_online_backup_is_consistent_and_restores(app, tmp_path):
    for n in range(20):
        data = fake_study(f"B{n}", str(n))
        ingest.store_study(data["study_orthanc_id"], data)
    stop = threading.Event()

    def keep_writing():
        with database.connection_context():
            n = 100
            while not stop.is_set():
                data = fake_study(f"W{n}", str(n))
                ingest.store_study(data["study_orthanc_id"], data)
                n += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        dest = backup.backup(app.config["DATABASE_URL"], str(tmp_path / "b" / "copy"))
    finally:
        stop.set()
        writer.join()
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600"
    total = Study.select().count()
    assert total > 20
    # Every study in the backup has its patient (no half-written rows), and
    # what was there before the backup started is all in it.
    backup.restore(app.config["DATABASE_URL"], dest)
    database.close()
    database.connect()
    restored = Study.select().count()
    assert 20 <= restored <= total
    assert Patient.select().count() == restored
    assert all(p.password_hash for p in Patient.select())


def test_restore_refuses_what_is_not_a_backup(app, tmp_path):
    bogus = tmp_path / "bogus"
    bogus.write_bytes(b"not a database at all" * 100)
    with pytest.raises(backup.BackupError):
        backup.restore(app.config["DATABASE_URL"], str(tmp_path / "missing"))
    if backup.sqlite_path(app.config["DATABASE_URL"]):
        # Whatever SQLite raises for a file that is not a database: the restore refuses it.
        with pytest.raises(Exception):  # noqa: B017
            backup.restore(app.config["DATABASE_URL"], str(bogus))
        assert Patient.select().count() >= 0  # the database is still usable


def run_cli(stack, *args):
    env = dict(os.environ, AUTHSVC_CONFIG=str(stack.data_dir / "authsvc.json"))
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "authsvc", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.stack
def test_backup_and_restore_procedure_on_the_stack(stack, admin, tmp_path):
    """docs/backups.md's procedure: `make backup` while running; to restore, stop the
    service, `make restore BACKUP=...`, start it again."""
    before = admin.get("/api/studies", params={"limit": 1000}).json()["studies"]
    out = run_cli(stack, "backup", str(tmp_path / "stack-backup"))
    assert out.returncode == 0, out.stderr
    stack.stop("authsvc")
    try:
        # The database is lost.
        if stack.site["database_url"]:
            stack_sql(stack, "DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        else:
            (stack.data_dir / "authsvc.sqlite3").write_bytes(b"")
        out = run_cli(stack, "restore", str(tmp_path / "stack-backup"))
        assert out.returncode == 0, out.stderr
    finally:
        stack.start_service()
    b = Browser(stack.public_url)
    assert b.login(username="admin", password=ADMIN_PASSWORD).status_code == 200
    after = b.get("/api/studies", params={"limit": 1000}).json()["studies"]
    assert {s["orthanc_id"] for s in after} >= {s["orthanc_id"] for s in before}
