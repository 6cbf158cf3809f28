"""Ingest waits on a locked database as docs/architecture.md says (a 5 s
wait, then a clear failure that keeps the study queued)."""

import threading

import pytest

from authsvc import ingest
from tests.helpers import ON_POSTGRES, fake_study


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's write lock")
def test_ingest_waits_for_a_locked_database(app, tmp_path):
    """Another process holds SQLite's write lock for 1 s and writes: ingest
    waits for it (busy_timeout, docs/architecture.md: 5 s) instead of failing at once with
    `database is locked` when its transaction, begun by reading, wants to write."""
    import sqlite3

    path = app.config["DATABASE_URL"].split("sqlite:///", 1)[1]
    holding = threading.Event()

    def other_writer():
        conn = sqlite3.connect(path, isolation_level=None, timeout=5)
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO keyvalue (key, value) VALUES ('other', 'x')")
        holding.set()
        threading.Event().wait(1.0)
        conn.execute("COMMIT")
        conn.close()

    from authsvc.models import KeyValue  # noqa: F401 (the table written above)

    t = threading.Thread(target=other_writer)
    data = fake_study("P-7", "7")
    t.start()
    holding.wait(5)
    ingest.store_study(data["study_orthanc_id"], data)
    t.join()
    from authsvc.models import Study

    assert Study.select().where(Study.orthanc_id == data["study_orthanc_id"]).count() == 1


def test_ingest_keeps_a_study_queued_while_the_database_is_busy(app, caplog, monkeypatch):
    """Locked past the wait: the study stays queued, no attempt is spent, and
    the log says the database was busy (not an unexpected error)."""
    import peewee

    ingest.enqueue("57000000-00000000-00000000-00000000-00000001")

    def locked(orthanc, orthanc_id):
        raise peewee.OperationalError("database is locked")

    monkeypatch.setattr(ingest, "record_study", locked)
    with caplog.at_level("INFO"):
        assert ingest.process_queue(None) == 0
    from authsvc.models import IngestQueue

    row = IngestQueue.get()
    assert row.attempts == 0
    assert "unexpected" not in caplog.text and "busy" in caplog.text
