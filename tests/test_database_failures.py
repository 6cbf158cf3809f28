"""The database locked or full: a clear 503, nothing half-written, and the
work done once the database is back (SQLite; PostgreSQL fails differently and
its transactions are tested by the rest of the suite)."""

import sqlite3
import threading

import pytest

from authsvc import ingest
from authsvc.db import database
from authsvc.models import IngestQueue, Patient, Resource, Study
from tests.helpers import ON_POSTGRES, fake_study

pytestmark = pytest.mark.skipif(ON_POSTGRES, reason="SQLite's locking and page limits")


def db_path(app):
    return app.config["DATABASE_URL"].split(":///", 1)[1]


@pytest.fixture
def patient(app):
    data = fake_study("P-1", "1")
    return ingest.store_study(data["study_orthanc_id"], data)


def test_locked_database_gives_a_clear_503_and_no_half_rows(app, client, patient):
    locker = sqlite3.connect(db_path(app), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        r = client.post("/api/login", json={"patient_id": "P-1", "password": patient})
        assert r.status_code == 503
        assert r.json["error"] == "database_unavailable"
        assert r.headers["Retry-After"]
        assert "Set-Cookie" not in r.headers
        later = fake_study("P-2", "2")
        # Whatever the driver raises with the database gone: the write must not pass silently.
        with pytest.raises(Exception):  # noqa: B017
            ingest.store_study(later["study_orthanc_id"], later)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    database.close()
    database.connect()
    assert Patient.select().where(Patient.patient_id == "P-2").count() == 0
    assert Study.select().count() == 1
    assert (
        client.post("/api/login", json={"patient_id": "P-1", "password": patient}).status_code
        == 200
    )


def test_queued_study_survives_a_locked_database(app, monkeypatch):
    data = fake_study("P-3", "3")
    sid = data["study_orthanc_id"]

    class FakeOrthanc:  # only the database is under test here; ingest's reads of
        pass  # Orthanc are tested against the real one elsewhere

    monkeypatch.setattr(ingest, "read_study", lambda orthanc, oid: data)
    ingest.enqueue(sid)
    locker = sqlite3.connect(db_path(app), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    outcome = {}

    def run():
        with database.connection_context():
            try:
                outcome["recorded"] = ingest.process_queue(FakeOrthanc())
            except Exception as exc:
                outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    locker.execute("ROLLBACK")
    locker.close()
    database.close()
    database.connect()
    assert "error" in outcome or outcome.get("recorded") == 0
    assert Study.select().where(Study.orthanc_id == sid).count() == 0
    assert IngestQueue.select().where(IngestQueue.orthanc_id == sid).count() == 1
    assert ingest.process_queue(FakeOrthanc()) == 1  # the next pass records it whole
    assert Resource.select().join(Study).where(Study.orthanc_id == sid).count() == 6


def test_full_database_gives_a_clear_503_and_no_half_rows(app, client, patient, monkeypatch):
    pages = database.execute_sql("PRAGMA page_count").fetchone()[0]
    # Every connection from now on may not grow the file: the disk is full.
    monkeypatch.setattr(
        database.obj, "_pragmas", list(database.obj._pragmas) + [("max_page_count", pages + 2)]
    )
    database.close()
    database.connect()
    big = fake_study("P-FULL", "9", series=40, per_series=40)
    with pytest.raises(Exception) as failure:
        ingest.store_study(big["study_orthanc_id"], big)
    assert "full" in str(failure.value)
    assert Patient.select().where(Patient.patient_id == "P-FULL").count() == 0
    assert (
        Resource.select().join(Study).where(Study.orthanc_id == big["study_orthanc_id"]).count()
        == 0
    )
    statuses = {
        client.post("/api/login", json={"patient_id": "P-1", "password": patient}).status_code
        for _ in range(60)
    }
    assert statuses <= {200, 503} and 503 in statuses
