"""The decision endpoints' short memory of live sessions (SESSION_CACHE_SECONDS):
what it may keep, for how long, and what forgets it at once. In-process, on
the test's database; "another worker" is a change made straight in the
database, as another gunicorn process would make it."""

import datetime
import threading
import time

from authsvc import audit, ingest
from authsvc import sessions as sessions_module
from authsvc.cli import ensure_admin
from authsvc.models import Session, utcnow
from authsvc.sessions import forget_recent
from tests.decisions import TTL, granted, patient  # noqa: F401 (a fixture)
from tests.helpers import fake_study

ADMIN_PW = "admin password long enough"


def test_a_session_ended_by_another_worker_is_refused_within_the_ttl(app, patient):
    assert granted(app, patient)
    Session.update(ended=True).execute()  # another worker's logout
    assert granted(app, patient)  # this process still remembers it...
    time.sleep(TTL + 0.1)
    assert not granted(app, patient)  # ...for SESSION_CACHE_SECONDS at most


def test_pages_never_use_it(app, patient):
    assert granted(app, patient)
    Session.update(ended=True).execute()
    assert patient["client"].get("/api/studies").status_code == 401


def test_the_sessions_own_end_still_applies_to_the_second(app, patient):
    Session.update(expires_at=utcnow() + datetime.timedelta(seconds=0.3)).execute()
    assert granted(app, patient)
    time.sleep(0.35)
    assert not granted(app, patient)  # expired inside the TTL: refused


def test_zero_turns_it_off(app, patient):
    app.extensions["authsvc"].sessions.cache_seconds = 0
    assert granted(app, patient)
    Session.update(ended=True).execute()
    assert not granted(app, patient)


def test_logout_and_an_admin_ending_it_forget_at_once(app, patient):
    assert granted(app, patient)
    assert patient["client"].post("/api/logout", json={}).status_code == 200
    assert not granted(app, patient)

    ensure_admin("admin", ADMIN_PW)
    admin = app.test_client()
    assert (
        admin.post("/api/login", json={"username": "admin", "password": ADMIN_PW}).status_code
        == 200
    )
    Session.update(ended=False).execute()
    forget_recent()
    assert granted(app, patient)
    session = Session.get(Session.kind == "patient")
    assert admin.post(f"/api/sessions/{session.id}/end", json={}).status_code == 200
    assert not granted(app, patient)


def test_one_statement_per_decision(app, patient, monkeypatch):
    """The session and the study asked about are read in one statement
    (fastsql.prefetch): on PostgreSQL a round trip costs more than either."""
    from authsvc import fastsql
    from authsvc.db import database

    forget_recent()
    assert granted(app, patient)  # the study's keys now cached
    forget_recent()
    compiled, other, inside = [], [], []
    real_one, real_sql = fastsql._execute, database.obj.execute_sql
    me = threading.get_ident()

    def one(name, sql, params):
        if threading.get_ident() != me:
            return real_one(name, sql, params)
        compiled.append(name)
        inside.append(1)
        try:
            return real_one(name, sql, params)
        finally:
            inside.pop()

    def any_sql(sql, params=None, *args, **kwargs):
        # This thread's (the request's), not the service's writer threads'.
        if threading.get_ident() != me:
            return real_sql(sql, params, *args, **kwargs)
        if not inside and sql.lstrip().upper().startswith(("SELECT", "EXECUTE")):
            other.append(sql)
        return real_sql(sql, params, *args, **kwargs)

    monkeypatch.setattr(fastsql, "_execute", one)
    monkeypatch.setattr(database.obj, "execute_sql", any_sql)
    assert granted(app, patient)
    assert compiled == ["session+study-of-resource"] and other == [], (compiled, other)
    patient["token"] = "x" * 43  # unknown session: still one, and refused
    assert not granted(app, patient)
    assert len(compiled) == 2 and other == [], (compiled, other)


# -- the studies granted to a remembered session --------------------------------


def count_statements(app, fn):
    """The statements fn's requests ran (this thread's: the service's own
    writer threads are off the request)."""
    from authsvc.db import database

    counted = []
    real = database.obj.execute_sql
    me = threading.get_ident()

    def counting(sql, params=None, *args, **kwargs):
        if threading.get_ident() == me:
            counted.append(sql)
        return real(sql, params, *args, **kwargs)

    database.obj.execute_sql = counting
    try:
        fn()
    finally:
        database.obj.execute_sql = real
    return len(counted)


def test_a_granted_study_answers_its_resources_without_the_database(app, patient):
    data = fake_study("PC-1", "1")
    assert granted(app, patient)
    # Another instance and a series of the same study: no statement at all.
    for uri in (f"/instances/{data['instances'][1][0]}/preview", f"/series/{data['series'][1][0]}"):
        patient["uri"] = uri
        assert count_statements(app, lambda: granted(app, patient)) == 0
    # Another patient's study, the climb to the patient: asked, and refused.
    other = fake_study("PC-2", "2")
    ingest.store_study(other["study_orthanc_id"], other)
    for uri in (
        f"/instances/{other['instances'][0][0]}/file",
        f"/instances/{data['instances'][1][0]}/patient",
    ):
        patient["uri"] = uri
        assert count_statements(app, lambda: granted(app, patient)) > 0
    patient["uri"] = f"/instances/{other['instances'][0][0]}/file"
    assert not granted(app, patient)


def test_remembered_grants_are_forgotten_with_the_session(app, patient):
    data = fake_study("PC-1", "1")
    assert granted(app, patient)
    Session.update(ended=True).execute()  # another worker's logout
    time.sleep(TTL + 0.1)
    patient["uri"] = f"/instances/{data['instances'][1][0]}/preview"
    assert not granted(app, patient)
    assert granted(app, patient) is False
    forget_recent()


# -- round trips of a rule login's decisions ------------------------------------


def test_a_remembered_rule_login_decides_in_one_statement(app):
    """A rule login's session found in this process's memory: the study of
    the resource and the login's match with it come in one statement (on
    PostgreSQL each statement is a round trip); the answers stay right."""
    from authsvc.models import RuleLogin, RuleMatch, Study

    forget_recent()
    mine, other = fake_study("PR-1", "1"), fake_study("PR-2", "2")
    for data in (mine, other):
        ingest.store_study(data["study_orthanc_id"], data)
    login = RuleLogin.create(name="dr-one", password_hash="x", active=True)
    RuleMatch.create(login=login, study=Study.get(Study.orthanc_id == mine["study_orthanc_id"]))
    token = app.extensions["authsvc"].sessions.start(rule_login=login)
    ask = {"token": token, "uri": f"/instances/{mine['instances'][0][0]}/file"}
    assert granted(app, ask)  # the session is now remembered
    audit.access_notes.flush()  # and the study's audit entry written (not counted below)
    for data, expected in ((mine, True), (other, False)):
        for uri in (
            f"/series/{data['series'][0][0]}",
            f"/instances/{data['instances'][1][0]}/file",
            f"/studies/{data['study_orthanc_id']}",
        ):
            ask["uri"] = uri
            # Once before counting: PostgreSQL prepares a statement the first
            # time a connection runs it (PREPARE, then EXECUTE each time).
            for _ in range(2):
                for hit in sessions_module._recent.values():
                    hit[3].clear()  # no study's grant remembered
                assert granted(app, ask) is expected, uri
            for hit in sessions_module._recent.values():
                hit[3].clear()
            result = []
            assert (
                count_statements(app, lambda result=result: result.append(granted(app, ask))) == 1
            ), uri
            assert result == [expected], uri


def test_models_of_an_unchanged_session_row_are_reused_never_a_changed_one(app):
    """The decision path reads the session's row every time it is not
    remembered, and builds its models again only when the row changed: a
    rule login disabled, or its session ended, is refused at the next read."""
    from authsvc.models import RuleLogin, RuleMatch, Study

    mine = fake_study("PR-9", "1")
    ingest.store_study(mine["study_orthanc_id"], mine)
    login = RuleLogin.create(name="dr-nine", password_hash="x", active=True)
    RuleMatch.create(login=login, study=Study.get(Study.orthanc_id == mine["study_orthanc_id"]))
    store = app.extensions["authsvc"].sessions
    token = store.start(rule_login=login)
    ask = {"token": token, "uri": f"/studies/{mine['study_orthanc_id']}"}
    forget_recent()
    assert granted(app, ask)
    first = sessions_module._built[store.token_hash(token)][1]
    forget_recent()
    assert granted(app, ask)
    assert sessions_module._built[store.token_hash(token)][1] is first  # not built again
    RuleLogin.update(active=False).where(RuleLogin.id == login.id).execute()
    forget_recent()
    assert not granted(app, ask)
    RuleLogin.update(active=True).where(RuleLogin.id == login.id).execute()
    forget_recent()
    assert granted(app, ask)
    Session.update(ended=True).execute()
    forget_recent()
    assert not granted(app, ask)
