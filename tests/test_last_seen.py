"""Sessions' last_seen is written off the decision path (authsvc/lastseen.py):
a decision that finds its session due for the once-a-minute
touch writes nothing; the note reaches the database with the next flush,
never later than the moment it was noted, and idle sessions still end."""

import datetime

from authsvc import audit, lastseen
from authsvc.models import Session, utcnow
from authsvc.sessions import forget_recent
from tests.decisions import granted, patient, writes_during  # noqa: F401 (a fixture)
from tests.helpers import calls_of


def age_sessions(minutes):
    then = utcnow() - datetime.timedelta(minutes=minutes)
    Session.update(last_seen=then).execute()
    forget_recent()
    return then


def test_a_decision_due_for_a_touch_writes_nothing(app, patient):  # noqa: F811
    assert granted(app, patient)
    audit.access_notes.flush()  # the study's audit entry is written now, once
    age_sessions(5)
    result, writes = writes_during(lambda: granted(app, patient))
    assert result and writes == [], writes


def test_the_note_reaches_the_database_at_the_next_flush(app, patient):  # noqa: F811
    then = age_sessions(5)
    before = utcnow()
    assert granted(app, patient)
    assert Session.get(Session.kind == "patient").last_seen == then  # not yet
    assert lastseen.notes.flush() >= 1
    seen = Session.get(Session.kind == "patient").last_seen
    assert before <= seen <= utcnow()
    assert lastseen.notes.flush() == 0  # nothing twice


def test_a_flush_never_moves_last_seen_back(app, patient):  # noqa: F811
    age_sessions(5)
    assert granted(app, patient)
    later = utcnow() + datetime.timedelta(seconds=30)  # another worker wrote a later use
    Session.update(last_seen=later).execute()
    lastseen.notes.flush()
    assert Session.get(Session.kind == "patient").last_seen == later


def test_idle_sessions_still_end(app, patient):  # noqa: F811
    age_sessions(31)  # past the 30 minutes' idle limit
    assert not granted(app, patient)
    lastseen.notes.flush()
    assert not granted(app, patient)


def test_notes_of_another_database_are_not_written(app, patient):  # noqa: F811
    age_sessions(5)
    assert granted(app, patient)
    lastseen.notes._database = object()  # as if taken under a previous app
    assert lastseen.notes.flush() == 0


def test_the_flush_thread_writes_on_its_own(app, patient):  # noqa: F811
    import time

    notes = lastseen.LastSeen(flush_seconds=0.1)
    session = Session.get(Session.kind == "patient")
    when = utcnow()
    age_sessions(5)
    notes.note(session.id, when)
    deadline = time.monotonic() + 5
    while Session.get_by_id(session.id).last_seen != when and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Session.get_by_id(session.id).last_seen == when


def test_a_flush_of_many_sessions_is_one_statement(app, patient):  # noqa: F811
    """Hundreds of sessions fall due together after a pause (or in bench B2,
    whose sessions were all made at once): the flush sends them as one
    statement with a row of parameters each, not a query built by peewee per
    session on the worker's thread (which held the GIL while its decisions
    waited). Each row still never moves last_seen back."""
    from authsvc.db import database

    then = age_sessions(5)
    session = Session.get(Session.kind == "patient")
    notes = lastseen.LastSeen(flush_seconds=3600)  # flushed here only
    when = utcnow()
    notes.note(session.id, when)
    for n in range(1, 200):  # sessions that do not exist (ended meanwhile)
        notes.note(session.id + 1000 + n, when)
    with calls_of(database.obj, "execute_sql") as executed:
        assert notes.flush() == 200
    updates = [sql for sql, *_ in executed if sql.lstrip().upper().startswith("UPDATE")]
    assert len(updates) <= 1, f"{len(updates)} UPDATE statements for one flush"
    assert Session.get_by_id(session.id).last_seen == when > then
