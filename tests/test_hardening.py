"""Brute-force limits, the client address, and the audit log (in-process)."""

import datetime

import pytest

from authsvc import audit, auditchain, ingest, passwords
from authsvc.cli import ensure_admin
from authsvc.models import AuditEvent, LoginFailure, StaffUser
from tests.helpers import admin_test_client, fake_study

ADMIN_PW = "admin password long enough"


@pytest.fixture
def patient(app):
    data = fake_study("P-1", "1")
    return {
        "password": ingest.store_study(data["study_orthanc_id"], data),
        "study": data["study_orthanc_id"],
    }


def attempt(client, password, pid="P-1", address="10.0.0.1"):
    return client.post(
        "/api/login",
        json={"patient_id": pid, "password": password},
        headers={"X-Forwarded-For": address},
    )


def age_failures(seconds):
    """Time passes: every recorded failure moves `seconds` into the past."""
    for row in LoginFailure.select():
        LoginFailure.update(at=row.at - datetime.timedelta(seconds=seconds)).where(
            LoginFailure.id == row.id
        ).execute()


def test_delays_grow_after_five_failures_and_refuse_unevaluated(client, patient):
    for _ in range(5):
        assert attempt(client, "wrong-word-1").status_code == 401
    r = attempt(client, patient["password"])  # the right password, but too early
    assert r.status_code == 429
    assert r.json["error"] == "too_many_attempts"
    assert 1 <= int(r.headers["Retry-After"]) <= 2
    age_failures(3)
    assert attempt(client, "wrong-word-1").status_code == 401  # 6th failure
    r = attempt(client, "wrong-word-1")
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 2  # waits longer now
    age_failures(61)
    assert attempt(client, patient["password"]).status_code == 200
    assert LoginFailure.select().where(LoginFailure.key == "patient:p-1").count() == 0


def test_hundred_failures_an_hour_stop_all_evaluation_until_the_hour_passes(client, patient):
    now = datetime.datetime.utcnow()
    LoginFailure.insert_many(
        [{"key": "patient:p-1", "at": now - datetime.timedelta(minutes=50)}] * 100
    ).execute()
    r = attempt(client, patient["password"], address="10.0.0.9")
    assert r.status_code == 429
    assert 500 < int(r.headers["Retry-After"]) <= 600
    age_failures(601)  # the attack stopped an hour ago
    assert attempt(client, patient["password"], address="10.0.0.9").status_code == 200


def test_other_accounts_are_not_locked_by_an_attack_on_one(client, patient):
    other = fake_study("P-2", "2")
    pw2 = ingest.store_study(other["study_orthanc_id"], other)
    for n in range(8):
        attempt(client, "wrong-word-1", address=f"10.0.1.{n}")
    assert attempt(client, patient["password"], address="10.0.2.1").status_code == 429
    assert attempt(client, pw2, pid="P-2", address="10.0.2.1").status_code == 200


def test_one_address_guessing_many_accounts_is_slowed(client, patient):
    for n in range(20):
        assert attempt(client, "wrong-word-1", pid=f"X{n}", address="10.9.9.9").status_code == 401
    assert attempt(client, patient["password"], address="10.9.9.9").status_code == 429
    assert attempt(client, patient["password"], address="10.9.9.8").status_code == 200


def test_staff_and_rule_logins_are_limited_too(client, app):
    ensure_admin("admin", ADMIN_PW)
    for _ in range(6):
        client.post("/api/login", json={"username": "admin", "password": "nope"})
    assert (
        client.post("/api/login", json={"username": "admin", "password": ADMIN_PW}).status_code
        == 429
    )
    for _ in range(6):
        client.post("/api/login", json={"login": "dr-x", "password": "nope"})
    assert client.post("/api/login", json={"login": "dr-x", "password": "nope"}).status_code == 429


def test_forwarded_address_believed_only_from_the_proxy(app, patient):
    client = app.test_client()
    client.post(
        "/api/login",
        json={"patient_id": "P-1", "password": "nope-nope-no"},
        headers={"X-Forwarded-For": "192.0.2.7"},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    client.post(
        "/api/login",
        json={"patient_id": "P-1", "password": "nope-nope-no"},
        headers={"X-Forwarded-For": "192.0.2.8"},
    )  # from 127.0.0.1: the proxy
    addresses = [
        e.address
        for e in AuditEvent.select()
        .where(AuditEvent.event == "login_failed")
        .order_by(AuditEvent.id)
    ]
    assert addresses == ["203.0.113.5", "192.0.2.8"]


# -- audit ----------------------------------------------------------------------


def admin_client(app):
    return admin_test_client(app, ADMIN_PW)


def test_audit_records_logins_issues_shares_and_study_access(app, patient):
    p = app.test_client()
    attempt(p, "wrong-word-1")
    token = attempt(p, patient["password"]).headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    share = p.post("/api/shares", json={}).json
    p.post(f"/api/shares/{share['id']}/revoke", json={})
    ask = {"method": "GET", "uri": f"/studies/{patient['study']}", "token": token}
    for _ in range(3):  # a viewer's many requests: one entry per hour
        r = p.post("/internal/authorize", json=ask, headers={"X-Authsvc-Secret": "i" * 40})
        assert r.json["granted"]
    # The decision's entry is written by the process's own thread, a moment
    # later (authsvc/offpath.py); flush() returns once it is.
    audit.access_notes.flush()
    p.post("/api/logout", json={})
    admin = admin_client(app)
    admin.post("/api/patients/P-1/credentials", json={})
    events = admin.get("/api/audit").json
    kinds = [e["event"] for e in reversed(events["events"])]
    assert kinds == [
        "password_issued",
        "login_failed",
        "login",
        "share_created",
        "share_revoked",
        "study_access",
        "logout",
        "login",
        "password_issued",
    ]
    assert events["chain_ok"] is True
    failed = next(e for e in events["events"] if e["event"] == "login_failed")
    assert failed["address"] == "10.0.0.1" and failed["actor"] == "patient P-1"
    everything = str(events) + admin.get("/api/audit?format=csv").get_data(as_text=True)
    assert patient["password"] not in everything and token not in everything
    assert share["url"].split("#share=")[1] not in everything


def test_audit_filters_csv_and_admin_only(app, patient):
    attempt(app.test_client(), "wrong-word-1")
    admin = admin_client(app)
    only = admin.get("/api/audit?event=login_failed").json["events"]
    assert [e["event"] for e in only] == ["login_failed"]
    assert admin.get("/api/audit?actor=admin").json["events"][0]["event"] == "login"
    assert admin.get("/api/audit?since=2999-01-01").json["events"] == []
    assert admin.get("/api/audit?since=yesterday").status_code == 400
    csv = admin.get("/api/audit?format=csv")
    assert csv.headers["Content-Type"].startswith("text/csv")
    assert csv.get_data(as_text=True).splitlines()[0] == "id,at,event,actor,subject,address,detail"
    StaffUser.create(
        username="rad",
        role="radiologist",
        password_hash=passwords.hash_password(ADMIN_PW, generated=False),
    )
    rad = app.test_client()
    rad.post("/api/login", json={"username": "rad", "password": ADMIN_PW})
    assert rad.get("/api/audit").status_code == 403
    patient_client = app.test_client()
    attempt(patient_client, patient["password"], address="10.0.0.2")
    assert patient_client.get("/api/audit").status_code == 403


def test_csv_cells_cannot_be_formulas(app):
    audit.record("login_failed", actor='patient =HYPERLINK("http://x")', address="1.2.3.4")
    csv = admin_client(app).get("/api/audit?format=csv&event=login_failed").get_data(as_text=True)
    assert "'=HYPERLINK" in csv or "patient =HYPERLINK" in csv
    assert ",=HYPERLINK" not in csv


def test_tampering_breaks_the_chain(app, patient):
    for n in range(3):
        audit.record("login_failed", actor=f"patient X{n}", address="10.0.0.1")
    assert auditchain.verify().ok
    victim = AuditEvent.select().order_by(AuditEvent.id).offset(1).first()
    AuditEvent.update(address="10.6.6.6").where(AuditEvent.id == victim.id).execute()
    assert auditchain.verify().broken_at == victim.id
    AuditEvent.update(address="10.0.0.1").where(AuditEvent.id == victim.id).execute()
    assert auditchain.verify().ok
    AuditEvent.delete().where(AuditEvent.id == victim.id).execute()
    assert auditchain.verify().broken_at == victim.id + 1


def test_concurrent_appends_lose_nothing_and_keep_one_chain(app):
    """gunicorn's workers append at the same time (each decision may record a
    study access): every entry must be written, each after the one before."""
    import threading

    from authsvc.db import database

    def append(n):
        database.connect(reuse_if_open=True)  # each thread has its own connection
        try:
            for i in range(30):
                audit.record("login_failed", actor=f"worker {n} entry {i}")
        finally:
            database.close()

    workers = [threading.Thread(target=append, args=(n,)) for n in range(6)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert AuditEvent.select().where(AuditEvent.event == "login_failed").count() == 180
    assert auditchain.verify().ok


# -- sessions -------------------------------------------------------------------


def test_admin_lists_and_ends_any_session(app, patient):
    p = app.test_client()
    r = attempt(p, patient["password"])
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    first = app.test_client()
    attempt(first, patient["password"])  # a second session of the same patient
    admin = admin_client(app)
    listed = admin.get("/api/sessions").json["sessions"]
    assert token not in str(listed)
    patients = [s for s in listed if s["kind"] == "patient"]
    assert len(patients) == 2 and all(s["who"].startswith("patient #") for s in patients)
    newest = patients[0]["id"]  # newest first: the second session
    older = patients[1]["id"]
    assert admin.post(f"/api/sessions/{older}/end", json={}).status_code == 200
    assert p.get("/api/session").status_code == 401
    assert first.get("/api/session").status_code == 200
    assert [
        s["id"] for s in admin.get("/api/sessions").json["sessions"] if s["kind"] == "patient"
    ] == [newest]
    assert admin.post("/api/sessions/999999/end", json={}).status_code == 404
    assert AuditEvent.select().where(AuditEvent.detail == "ended by an admin").count() == 1


def test_only_admins_manage_sessions(app, patient):
    StaffUser.create(
        username="rad",
        role="radiologist",
        password_hash=passwords.hash_password(ADMIN_PW, generated=False),
    )
    rad = app.test_client()
    rad.post("/api/login", json={"username": "rad", "password": ADMIN_PW})
    assert rad.get("/api/sessions").status_code == 403
    assert rad.post("/api/sessions/1/end", json={}).status_code == 403
    p = app.test_client()
    attempt(p, patient["password"])
    assert p.get("/api/sessions").status_code == 403


def test_login_always_issues_a_new_token(app, patient):
    c = app.test_client()
    first = attempt(c, patient["password"]).headers["Set-Cookie"].split(";")[0]
    second = attempt(c, patient["password"]).headers["Set-Cookie"].split(";")[0]
    assert first != second


def test_audit_page_is_for_admins_only(app, patient):
    admin = admin_client(app)
    page = admin.get("/staff/audit?lang=es")
    assert page.status_code == 200
    assert "Registro de auditoría" in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    StaffUser.create(
        username="rad2",
        role="radiologist",
        password_hash=passwords.hash_password(ADMIN_PW, generated=False),
    )
    rad = app.test_client()
    rad.post("/api/login", json={"username": "rad2", "password": ADMIN_PW})
    assert rad.get("/staff/audit").status_code in (302, 303, 403)
    assert app.test_client().get("/staff/audit").status_code in (302, 303)
