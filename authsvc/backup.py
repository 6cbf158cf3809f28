"""Online, consistent backups of the service's database, and their restore.

SQLite: the backup API of sqlite3 copies a consistent snapshot while the
service keeps running (readers and writers are not stopped). PostgreSQL:
pg_dump, which reads one snapshot. Restore needs the service stopped: it
replaces the database whole.
"""

import datetime
import os
import shutil
import sqlite3
import subprocess
from urllib.parse import urlparse


class BackupError(RuntimeError):
    pass


def sqlite_path(url):
    parsed = urlparse(url)
    if parsed.scheme not in ("sqlite", "sqliteext"):
        return None
    # sqlite:///relative/path or sqlite:////absolute/path, as peewee reads them.
    return url.split(":///", 1)[1]


def default_name(folder, url):
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    ext = "sqlite3" if sqlite_path(url) else "pgdump"
    return os.path.join(folder, f"authsvc-{stamp}.{ext}")


def _check_sqlite(path):
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        result = db.execute("PRAGMA integrity_check").fetchone()[0]
    if result != "ok":
        raise BackupError(f"{path} failed SQLite's integrity check: {result}")


def backup(url, dest):
    """Write a consistent copy of the database at `url` to `dest`."""
    folder = os.path.dirname(os.path.abspath(dest))
    os.makedirs(folder, mode=0o700, exist_ok=True)  # if new: its owner's only
    path = sqlite_path(url)
    tmp = dest + ".partial"
    # Made 0600 before a byte is written: it holds password hashes.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    if path is not None:
        if not os.path.exists(path):
            raise BackupError(f"no database at {path}")
        source = sqlite3.connect(path)
        target = sqlite3.connect(tmp)
        try:
            with target:
                source.backup(target)
        finally:
            target.close()
            source.close()
        _check_sqlite(tmp)
    else:
        result = subprocess.run(
            ["pg_dump", "--format=custom", "--file", tmp, url], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BackupError("pg_dump failed: " + result.stderr.strip()[-500:])
    os.chmod(tmp, 0o600)  # it holds password hashes
    os.replace(tmp, dest)
    return dest


def restore(url, source):
    """Replace the database at `url` by the backup `source` (service stopped)."""
    if not os.path.exists(source):
        raise BackupError(f"no backup at {source}")
    path = sqlite_path(url)
    if path is not None:
        _check_sqlite(source)
        tmp = path + ".restoring"
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o600)
        for stale in (path + "-wal", path + "-shm"):
            if os.path.exists(stale):
                os.remove(stale)
        os.replace(tmp, path)
        return
    result = subprocess.run(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "--dbname", url, source],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BackupError("pg_restore failed: " + result.stderr.strip()[-500:])
