"""One implementation per resource: the pages' URLs (/staff/api/..., /portal/api/...)
and the scripts' URLs (/api/...) do the same thing and answer the same JSON,
and each URL still refuses whom it refused before."""

import logging

import pytest

from authsvc import ingest
from authsvc.cli import ensure_admin
from authsvc.db import database
from authsvc.models import AuditEvent, Patient
from tests.helpers import fake_study
from tests.pages_world import (  # noqa: F401 (fixtures)
    STAFF_PASSWORD,
    client_as,
    client_of,
    make_app,
    rule_and_share_logins,
    site,
    staff_client,
    world,
)

REISSUE_URLS = ["/api/patients/P-2/credentials", "/staff/api/patients/P-2/reissue"]


def _dashboard_row(client, study):
    rows = client.get("/staff/api/studies").json["studies"]
    return next(r for r in rows if r["orthanc_id"] == study)


@pytest.mark.parametrize("url", REISSUE_URLS)
def test_both_reissues_do_the_same(site, world, url, caplog):  # noqa: F811
    """Either URL: a new hash, the display copy kept for the slip, the old
    password's sessions ended, one audit entry saying how, the password in
    the answer once and in no log line."""
    c = staff_client(site, "rad")
    patient = client_as(site, patient_id="P-2", password=world["pw_b"])
    assert patient.get("/portal").status_code == 200
    before = AuditEvent.select().where(AuditEvent.event == "password_issued").count()
    old_hash = Patient.get(Patient.patient_id == "P-2").password_hash
    with caplog.at_level(logging.DEBUG):
        r = c.post(url, json={})
    assert r.status_code == 200
    assert set(r.json) == {"ok", "patient_id", "password", "kept_for_slip"}
    assert r.json["ok"] is True and r.json["patient_id"] == "P-2" and r.json["kept_for_slip"]
    new = r.json["password"]
    assert new != world["pw_b"] and Patient.get(Patient.patient_id == "P-2").password_hash != (
        old_hash
    )
    row = _dashboard_row(c, world["b"])
    assert row["login"] == "pending" and "-".join(row["password"]) == new
    assert patient.get("/portal").status_code == 302  # its session ended
    entries = list(
        AuditEvent.select()
        .where(AuditEvent.event == "password_issued")
        .order_by(AuditEvent.id.desc())
    )
    assert len(entries) == before + 1
    how = "reissued by staff" if url.startswith("/api/") else "reissued from the dashboard"
    assert entries[0].detail == how and entries[0].actor == "staff rad"
    assert entries[0].subject == "patient P-2"
    for form in (new, new.replace("-", "")):
        assert form not in caplog.text
    assert client_as(site).post("/api/login", json={"patient_id": "P-2", "password": new}).json


@pytest.mark.parametrize("url", REISSUE_URLS)
def test_reissue_without_display_key_gives_the_password_once(tmp_path, database_url, url):
    """No display key: nothing is kept (display.py), so the answer is the
    only place the new password is shown, on either URL."""
    app = make_app(tmp_path, database_url, display_key=None)
    try:
        data = fake_study("P-2", "9")
        ingest.store_study(data["study_orthanc_id"], data)
        ensure_admin("admin", STAFF_PASSWORD)
        c = staff_client(app)
        r = c.post(url, json={})
        assert r.status_code == 200 and r.json["kept_for_slip"] is False
        assert Patient.get(Patient.patient_id == "P-2").display_password is None
        assert c.post("/api/login", json={"patient_id": "P-2", "password": r.json["password"]}).json
    finally:
        database.close()


@pytest.mark.parametrize("url", REISSUE_URLS)
@pytest.mark.parametrize("who", ["nobody", "patient", "rule", "share"])
def test_reissue_refuses_whom_it_refused(site, world, url, who):  # noqa: F811
    c = client_of(site, world, who)
    hash_before = Patient.get(Patient.patient_id == "P-2").password_hash
    assert c.post(url, json={}).status_code == (401 if who == "nobody" else 403)
    assert Patient.get(Patient.patient_id == "P-2").password_hash == hash_before
    # A cross-site form cannot send JSON: refused unread (the CSRF guard).
    staff = staff_client(site)
    assert staff.post(url, data={"x": "1"}).status_code == 415
    assert Patient.get(Patient.patient_id == "P-2").password_hash == hash_before
    assert staff.post(url.replace("P-2", "NOPE"), json={}).status_code == 404


# -- the list of studies ------------------------------------------------------

STUDIES_URLS = ["/api/studies", "/staff/api/studies"]


@pytest.mark.parametrize("query", ["", "?q=nunez", "?pending=1", "?modality=CT", "?limit=1"])
def test_both_study_lists_answer_the_same(site, world, query):  # noqa: F811
    c = staff_client(site)
    api, pages = (c.get(url + query) for url in STUDIES_URLS)
    assert api.status_code == pages.status_code == 200
    assert api.json == pages.json
    rows = api.json["studies"]
    if query == "?q=nunez":
        assert [r["patient_id"] for r in rows] == ["P-1"]
    if query == "?limit=1":
        assert len(rows) == 1
    if query == "":
        row = next(r for r in rows if r["orthanc_id"] == world["a"])
        # The study as DICOM has it, and as people read it.
        assert row["patient_name"] == "NÚÑEZ^JOSÉ" and row["patient_name_text"] == "NÚÑEZ, JOSÉ"
        assert row["date"] == "20260101" and row["date_text"] == "1 ene 2026"
        assert isinstance(row["modalities"], list) and row["modalities_text"]
        assert row["login"] == "pending" and "-".join(row["password"]) == world["pw_a"]
        assert row["patient_has_login"] is True and "access_tags" in row and "recorded_at" in row
        assert api.json["batch_url"].startswith("/staff/batch-slips")


def test_a_patient_gets_the_same_shape_without_the_staff_fields(site, world):  # noqa: F811
    patient = client_as(site, patient_id="P-1", password=world["pw_a"])
    rows = patient.get("/api/studies").json["studies"]
    assert [r["orthanc_id"] for r in rows] == [world["a"]]
    staff_row = next(
        r
        for r in staff_client(site).get("/api/studies").json["studies"]
        if r["orthanc_id"] == world["a"]
    )
    assert set(rows[0]) < set(staff_row)
    assert {k: staff_row[k] for k in rows[0]} == rows[0]
    for staff_only in ("password", "login", "access_tags", "rule_logins", "reissue_url"):
        assert staff_only not in rows[0]
    # A filter narrows what the login sees, never more: no other patient's study.
    assert patient.get("/api/studies?q=P-2").json["studies"] == []
    assert patient.get("/api/studies?pending=1").json["studies"] == rows
    assert "batch_url" not in patient.get("/api/studies").json


@pytest.mark.parametrize("who", ["nobody", "patient", "rule", "share"])
def test_each_study_list_refuses_whom_it_refused(site, world, who):  # noqa: F811
    c = client_of(site, world, who)
    assert c.get("/staff/api/studies").status_code == (401 if who == "nobody" else 403)
    assert c.get("/api/studies").status_code == (401 if who == "nobody" else 200)


# -- the lists of shares ------------------------------------------------------


def _shares(site, world):
    patient = client_as(site, patient_id="P-2", password=world["pw_b"])
    kept = patient.post("/api/shares", json={"study": world["b"]}).json
    gone = patient.post("/api/shares", json={"days": 2}).json
    assert patient.post(gone["revoke_url"], json={}).status_code == 200
    return patient, kept, gone


@pytest.mark.parametrize("query", ["", "?all=1", "?q=pena", "?q=P-1"])
def test_every_share_list_answers_the_same(site, world, query):  # noqa: F811
    patient, kept, gone = _shares(site, world)
    mine = patient.get("/api/shares" + query)
    assert mine.status_code == 200 and mine.json == patient.get("/portal/api/shares" + query).json
    staff = staff_client(site)
    everyone = staff.get("/api/shares" + query)
    assert everyone.status_code == 200
    assert everyone.json == staff.get("/staff/api/shares" + query).json
    ids = [s["id"] for s in everyone.json["shares"]]
    if query == "?q=P-1":
        assert ids == [] and mine.json["shares"] == []
        return
    assert ids == ([gone["id"], kept["id"]] if query == "?all=1" else [kept["id"]])
    row = next(s for s in mine.json["shares"] if s["id"] == kept["id"])
    # Machine values and their text for people, in one row.
    assert row["expires_at"].endswith("Z") and row["expires"] and row["active"] is True
    assert row["patient_name"] == "PEÑA^ÁNGELA" and row["patient_name_text"] == "PEÑA, ÁNGELA"
    assert row["study"] == world["b"] and row["revoke_url"] == f"/api/shares/{kept['id']}/revoke"
    # The creation's answer is a row of the list, with the link (only then).
    assert {k: kept[k] for k in row if k != "used"} == {k: v for k, v in row.items() if k != "used"}
    assert "url" not in row and "qr_svg" not in row


@pytest.mark.parametrize("who", ["nobody", "patient", "rule", "share", "staff"])
def test_each_share_list_refuses_whom_it_refused(site, world, who):  # noqa: F811
    c = client_of(site, world, who)
    expected = {
        # URL: the kinds of login it lets in
        "/api/shares": ("patient", "staff"),
        "/portal/api/shares": ("patient",),
        "/staff/api/shares": ("staff",),
    }
    for url, allowed in expected.items():
        status = c.get(url).status_code
        assert status == (200 if who in allowed else 401 if who == "nobody" else 403), url
    if who == "patient":
        # Only the patient's own: P-2's share is not P-1's.
        assert c.get("/api/shares?all=1").json["shares"] == []


# -- the audit log ------------------------------------------------------------

AUDIT_URLS = ["/api/audit", "/staff/api/audit"]


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?event=password_issued",
        "?patient=P-2",
        "?limit=2",
        "?format=csv",
        "?format=csv&readable=1",
    ],
)
def test_both_audit_lists_answer_the_same(site, world, query):  # noqa: F811
    admin = staff_client(site)
    assert admin.post("/api/patients/P-2/credentials", json={}).status_code == 200
    api, page = (admin.get(url + query) for url in AUDIT_URLS)
    assert api.status_code == page.status_code == 200
    assert api.get_data() == page.get_data()
    if "csv" in query:
        header = api.get_data(as_text=True).splitlines()[0]
        raw = "id,at,event,actor,subject,address,detail"
        assert (header != raw) if "readable" in query else (header == raw)
        return
    rows = api.json["events"]
    assert api.json["chain_ok"] is True
    if query == "?limit=2":
        assert len(rows) == 2
    issued = next(r for r in rows if r["event"] == "password_issued")
    # As written, for scripts, and as people read it (the page's language: es).
    assert issued["subject"] == "patient P-2" and issued["at"].endswith("Z")
    assert issued["detail"] == "reissued by staff"
    assert issued["detail_text"] == "Reemitida por el personal"
    assert issued["patient_id"] == "P-2" and issued["patient_name"] == "PEÑA, ÁNGELA"


def test_a_long_audit_page_is_read_for_people_whole(site, world):  # noqa: F811
    """Its entries are looked up a few hundred at a time: every one of them
    still gets its patient."""
    from authsvc import audit

    for n in range(1201):
        audit.record("password_printed", actor="staff admin", subject="patient P-1", detail=f"#{n}")
    rows = staff_client(site).get("/api/audit?event=password_printed&limit=5000").json["events"]
    assert len(rows) == 1201
    assert {r["patient_name"] for r in rows} == {"NÚÑEZ, JOSÉ"}
    assert [r["detail"] for r in rows[:2]] == ["#1200", "#1199"] and rows[-1]["detail"] == "#0"


@pytest.mark.parametrize("who", ["nobody", "patient", "rule", "share", "radiologist"])
def test_each_audit_list_refuses_whom_it_refused(site, world, who):  # noqa: F811
    c = client_of(site, world, who)
    for url in AUDIT_URLS:
        for query in ("", "?format=csv"):
            assert c.get(url + query).status_code == (401 if who == "nobody" else 403), url


# -- resolving an identity conflict ---------------------------------------------

RESOLVE_URLS = ["/api/ingest/conflicts/{}/resolve", "/staff/api/conflicts/{}/resolve"]


def _held_back(n):
    """A study of P-1's PatientID with another patient's name: held back."""
    data = fake_study("P-1", str(20 + n), name="OTRO^PACIENTE")
    ingest.store_study(data["study_orthanc_id"], data)
    return data["study_orthanc_id"]


def test_both_resolutions_answer_the_same(site, world):  # noqa: F811
    admin = staff_client(site)
    answers = []
    for n, url in enumerate(RESOLVE_URLS):
        study = _held_back(n)
        r = admin.post(url.format(study), json={"action": "separate"})
        assert r.status_code == 200, r.json
        answers.append(r.json)
        # Resolved already: the same refusal on both.
        again = admin.post(url.format(study), json={"action": "separate"})
        assert again.status_code == 404 and again.json["error"] == "no_such_conflict"
        assert again.json["message"] == "Este conflicto ya se resolvió."
    assert [set(a) for a in answers] == [{"ok", "patient_id", "password"}] * 2
    assert [a["patient_id"] for a in answers] == ["P-1-2", "P-1-3"]
    assert all(a["ok"] is True and a["password"] for a in answers)
    assert (
        admin.post(RESOLVE_URLS[0].format(_held_back(5)), json={"action": "merge"}).json
        == admin.post(RESOLVE_URLS[1].format(_held_back(5)), json={"action": "merge"}).json
    )


@pytest.mark.parametrize("who", ["nobody", "patient", "rule", "share", "radiologist"])
def test_each_resolution_refuses_whom_it_refused(site, world, who):  # noqa: F811
    c = client_of(site, world, who)
    study = _held_back(0)
    for url in RESOLVE_URLS:
        r = c.post(url.format(study), json={"action": "separate"})
        assert r.status_code == (401 if who == "nobody" else 403), url
        assert (
            staff_client(site).post(url.format(study), data={"action": "separate"}).status_code
            == 415
        )
    assert staff_client(site).get("/staff/api/conflicts").json["conflicts"]  # still held back


# -- the list of identity conflicts ---------------------------------------------

CONFLICT_URLS = ["/api/ingest/conflicts", "/staff/api/conflicts"]


@pytest.mark.parametrize("staff", ["admin", "rad"])
def test_both_conflict_lists_answer_the_same(site, world, staff):  # noqa: F811
    """The scripts' list, the dashboard's, and the held studies of
    /api/ingest/problems: one entry, the service's own fields and the same
    for people in the request's language (es here)."""
    study = _held_back(0)
    c = staff_client(site, staff)
    api, page = (c.get(url) for url in CONFLICT_URLS)
    assert api.status_code == page.status_code == 200
    assert api.json == page.json
    (row,) = api.json["conflicts"]
    assert row["orthanc_id"] == study and row["patient_id"] == "P-1"
    assert row["patient_name"] == "OTRO^PACIENTE" and row["patient_name_text"] == "OTRO, PACIENTE"
    assert row["login"] == "P-1" and row["login_name_text"] == "NÚÑEZ, JOSÉ"
    assert row["birth_date"] == "19800101" and row["birth_date_text"] == "1 ene 1980"
    assert row["reason"] != row["reason_text"]  # English for scripts, Spanish for people
    assert row["detected_at"].endswith("Z") and row["detected_text"]
    assert row["attach_to"] == [a["patient_id"] for a in row["attach_choices"]]
    assert row["may_resolve"] is (staff == "admin")
    held = c.get("/api/ingest/problems").json["problems"]
    assert [p["conflict"] for p in held if "conflict" in p] == [row]
    assert c.get("/api/ingest/conflicts?limit=1").json == api.json
    _held_back(1)
    assert len(c.get("/staff/api/conflicts?limit=1").json["conflicts"]) == 1
    assert len(c.get("/api/ingest/conflicts").json["conflicts"]) == 2


@pytest.mark.parametrize("who", ["nobody", "patient", "rule", "share"])
def test_each_conflict_list_refuses_whom_it_refused(site, world, who):  # noqa: F811
    _held_back(0)
    c = client_of(site, world, who)
    for url in CONFLICT_URLS:
        assert c.get(url).status_code == (401 if who == "nobody" else 403), url
