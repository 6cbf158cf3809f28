"""A decision writes nothing on its request, not even the first audit entry
of its study this hour (authsvc/offpath.py): the entry reaches the log a
moment later, written by the process's own thread, dated when the decision
was made; a write that fails keeps the note for the next try."""

import pytest

from authsvc import audit
from authsvc.models import AuditEvent, StudyAccess, utcnow
from tests.decisions import granted, patient, writes_during  # noqa: F401 (a fixture)
from tests.helpers import calls_of


def study_access_entries():
    return list(AuditEvent.select().where(AuditEvent.event == "study_access"))


def note_studies(studies, notes=None):
    """Patient P-1's opening of each study this hour, noted in `notes` (by
    default a new writer, flushed only by the test); the writer."""
    import time

    notes = notes or audit.StudyAccessNotes(flush_seconds=3600)
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime())
    for study in studies:
        notes.note(("patient P-1", study, hour), ("P-1", "", utcnow()))
    return notes


def test_the_first_decision_of_the_hour_writes_nothing_on_its_request(app, patient):  # noqa: F811
    audit.access_notes.flush()
    # The process's thread would write at once: held back to look in between.
    with audit.access_notes.paused():
        before = utcnow()
        result, writes = writes_during(lambda: granted(app, patient))
        after = utcnow()
        assert result and writes == [], writes
        assert study_access_entries() == []
    audit.access_notes.flush()
    [entry] = study_access_entries()
    assert before <= entry.at <= after
    assert StudyAccess.select().count() == 1
    # The same study again this hour: nothing more.
    assert granted(app, patient)
    audit.access_notes.flush()
    assert len(study_access_entries()) == 1


def test_a_note_that_could_not_be_written_is_kept(app, patient, monkeypatch):  # noqa: F811
    def fails(*args, **kwargs):
        raise RuntimeError("the database is locked")

    audit.access_notes.flush()
    with audit.access_notes.paused():  # the thread waits until the write fails
        assert granted(app, patient)
        monkeypatch.setattr(audit, "_insert_access", fails)
    assert audit.access_notes.flush() == 0
    assert study_access_entries() == []
    monkeypatch.undo()
    audit.access_notes.flush()  # (or the thread's own, a moment before)
    assert len(study_access_entries()) == 1


def test_the_writer_keeps_its_connection_between_flushes(app, monkeypatch):
    """Its thread opens one connection and writes every later flush on it
    (opening a SQLite connection costs its pragmas; B2's first rounds
    flushed once per note)."""
    import threading
    from types import SimpleNamespace

    from authsvc.db import database
    from tests.helpers import wait_for

    opened = []
    real = database.obj.connect

    def connect(*args, **kwargs):
        result = real(*args, **kwargs)
        if threading.current_thread().name == f"authsvc-{audit.access_notes.name}":
            opened.append(result)
        return result

    monkeypatch.setattr(database.obj, "connect", connect)
    who = SimpleNamespace(audit_name="patient P-1")
    for n in range(3):
        audit.note_study_access(who, SimpleNamespace(orthanc_id=f"study-{n}", patient_id="P-1"))
        wait_for(lambda n=n: len(study_access_entries()) == n + 1, 10, what="the entry written")
    assert opened.count(True) == 1, opened


def test_entries_another_worker_recorded_cost_one_read(app):
    """The notes of one flush whose rows another worker already wrote are
    found in one read; only the others are written."""
    import time

    from authsvc.db import database

    notes = audit.StudyAccessNotes(flush_seconds=3600)  # flushed here only
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime())
    for n in range(5):
        StudyAccess.create(principal="patient P-1", study=f"s-{n}", hour=hour)
    for n in range(7):
        notes.note(("patient P-1", f"s-{n}", hour), ("P-1", "", utcnow()))
    with calls_of(database.obj, "execute_sql") as executed:
        assert notes.flush() == 7
    statements = [sql.split()[0].upper() for sql, *_ in executed if '"studyaccess"' in sql]
    assert sorted(e.subject for e in study_access_entries()) == ["s-5", "s-6"]
    assert statements == ["SELECT", "INSERT", "INSERT"], statements


def test_the_entries_of_one_flush_are_one_transaction(app):
    """New entries of one flush are appended under the chain's lock once,
    in one transaction (a commit each made the appends take turns), and the
    chain still verifies."""

    from authsvc import auditchain
    from authsvc.db import database

    notes = note_studies(f"t-{n}" for n in range(4))
    with calls_of(database.obj, "begin") as begun:
        assert notes.flush() == 4
    assert len(study_access_entries()) == 4
    assert len(begun) == 1, begun
    report = auditchain.verify()
    assert report.ok, report.problems


def test_a_big_flush_holds_the_chain_lock_in_bounded_turns(app, monkeypatch):
    """A backlog (a first pass over many studies, a worker that was paused)
    is appended in transactions of at most APPEND_BATCH entries: the chain's
    lock is never held for the whole backlog, so that a login's or a staff
    action's entry waits for one batch at most. A batch that fails keeps its
    notes and those after it; the batches before it stay written."""

    from authsvc import auditchain
    from authsvc.db import database

    monkeypatch.setattr(audit, "APPEND_BATCH", 3)
    notes = note_studies(f"b-{n}" for n in range(7))
    with calls_of(database.obj, "begin") as begun:
        assert notes.flush() == 7
    assert len(study_access_entries()) == 7
    assert len(begun) == 3, begun  # 3 + 3 + 1
    assert auditchain.verify().ok

    # The second batch fails: the first stays written, the rest is kept.
    note_studies((f"b-{n}" for n in range(7, 14)), notes)
    real_append = audit._append
    calls = []

    def failing(*args, **kwargs):
        calls.append(args)
        if len(calls) == 4:
            raise RuntimeError("disk full")
        return real_append(*args, **kwargs)

    monkeypatch.setattr(audit, "_append", failing)
    assert notes.flush() == 3  # the first batch; the failure is logged, the rest kept
    assert len(study_access_entries()) == 10
    monkeypatch.setattr(audit, "_append", real_append)
    notes.flush()
    assert sorted(e.subject for e in study_access_entries()) == sorted(f"b-{n}" for n in range(14))
    report = auditchain.verify()
    assert report.ok, report.problems


def test_the_read_of_recorded_entries_uses_the_index(app):
    """The one read of a flush is answered by the unique index on
    (principal, study, hour), never a scan of a table that grows every hour."""
    import time

    from peewee import SqliteDatabase

    from authsvc.db import database

    if not isinstance(database.obj, SqliteDatabase):
        pytest.skip("SQLite's query plan")
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime())
    keys = [("patient P-1", f"u-{n}", hour) for n in range(3)]
    seen = []
    real = database.obj.execute_sql

    def planned(sql, params=None, *args, **kwargs):
        if '"studyaccess"' in sql and sql.lstrip().upper().startswith("SELECT"):
            seen.append(real("EXPLAIN QUERY PLAN " + sql, params).fetchall())
        return real(sql, params, *args, **kwargs)

    database.obj.execute_sql = planned
    try:
        audit._already_recorded(keys)
    finally:
        database.obj.execute_sql = real
    assert seen and all("USING" in str(plan) and "SCAN" not in str(plan) for plan in seen), seen


def test_the_hour_key_follows_the_clock(monkeypatch):
    """The hour of the once-per-hour entries is formatted once an hour, and
    is a new one as soon as the clock passes the full hour (UTC)."""
    import time

    assert audit._this_hour() == time.strftime("%Y-%m-%dT%H", time.gmtime())
    base = 1_800_000_000 - 1_800_000_000 % 3600  # a full hour
    monkeypatch.setattr(audit.time, "time", lambda: base - 0.5)
    before = audit._this_hour()
    monkeypatch.setattr(audit.time, "time", lambda: base + 0.5)
    after = audit._this_hour()
    assert before == time.strftime("%Y-%m-%dT%H", time.gmtime(base - 1))
    assert after == time.strftime("%Y-%m-%dT%H", time.gmtime(base)) != before
