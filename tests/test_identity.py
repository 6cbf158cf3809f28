"""Who a study belongs to, in-process (no Orthanc): PatientIDs recorded as
sent, never merged; each study's own patient name."""

import pytest

from authsvc import ingest, passwords
from authsvc.cli import ensure_admin
from authsvc.migrations import migrate
from authsvc.models import Patient, SchemaVersion, StaffUser, Study
from conftest import fake_study

STAFF_PASSWORD = "a staff password, long enough"


@pytest.fixture
def staff(app):
    ensure_admin("admin", STAFF_PASSWORD)
    StaffUser.create(username="rad", role="radiologist",
                     password_hash=passwords.hash_password(STAFF_PASSWORD, generated=False))


def logged_in(app, **body):
    c = app.test_client()
    r = c.post("/api/login", json=body)
    assert r.status_code == 200, r.json
    return c


def as_admin(app):
    return logged_in(app, username="admin", password=STAFF_PASSWORD)


def record(data):
    return ingest.store_study(data["study_orthanc_id"], data)


def own_studies(client):
    return {s["orthanc_id"] for s in client.get("/api/studies").json["studies"]}


# -- 1. PatientIDs as sent ----------------------------------------------------

def test_patient_ids_differing_in_inner_spaces_are_two_logins(app):
    a, b = fake_study("SP 77", "1", name="ONE^PERSON"), fake_study("SP  77", "2", name="OTHER^PERSON")
    pw_a, pw_b = record(a), record(b)
    assert pw_a and pw_b, "each PatientID gets its own login"
    assert {p.patient_id for p in Patient.select()} == {"SP 77", "SP  77"}
    ca = logged_in(app, patient_id="SP 77", password=pw_a)
    cb = logged_in(app, patient_id="SP  77", password=pw_b)
    assert own_studies(ca) == {a["study_orthanc_id"]}
    assert own_studies(cb) == {b["study_orthanc_id"]}
    # The other's password does not open a login by typing the ID differently.
    assert app.test_client().post("/api/login", json={"patient_id": "SP 77",
                                                      "password": pw_b}).status_code == 401


@pytest.mark.parametrize("raw,expected", [
    ("  HC 0042 ", "HC 0042"), ("HC 0042\x00", "HC 0042"), ("A  B", "A  B"), ("\x00 X \x00", "X"),
])
def test_only_dicom_padding_is_removed(raw, expected):
    assert ingest.usable_patient_id(raw) == expected


def test_credentials_route_names_the_exact_patient(app, staff):
    record(fake_study("SP 77", "1"))
    record(fake_study("SP  77", "2"))
    admin = as_admin(app)
    r = admin.post("/api/patients/SP  77/credentials", json={})
    assert r.status_code == 200 and r.json["patient_id"] == "SP  77"
    assert admin.post("/api/patients/SP   77/credentials", json={}).status_code == 404


# -- 4. each study's own patient name -------------------------------------------------------

def test_each_study_shows_its_own_patient_name(app, staff):
    names = [f"PERSON^N{n}" for n in range(7)]
    for n, name in enumerate(names):
        record(fake_study("SEVEN", str(n), name=name))
    rows = as_admin(app).get("/api/studies").json["studies"]
    assert sorted(r["patient_name"] for r in rows) == names
    dashboard = as_admin(app).get("/staff/api/studies").json["studies"]
    assert sorted(r["patient_name"] for r in dashboard) == sorted(
        f"PERSON, N{n}" for n in range(7))


def test_viewer_shows_each_study_s_name(app, staff):
    first = fake_study("TWO-N", "1", name="FIRST^NAME")
    pw = record(first)
    second = fake_study("TWO-N", "2", name="first^name^^")  # the same name, spelt otherwise
    record(second)
    assert pw
    client = as_admin(app)
    shown = [client.get(f"/portal/studies/{d['study_orthanc_id']}").get_data(as_text=True)
             .split('id="viewer-patient">')[1].split("</span>")[0] for d in (first, second)]
    assert "FIRST, NAME" in shown[0] and "first, name" in shown[1]


def test_migration_0005_adds_each_study_s_name_to_an_older_database(app):
    from playhouse.migrate import SchemaMigrator, migrate as run_operations
    from authsvc.db import database
    record(fake_study("OLD-1", "1", name="OLD^NAME"))
    db = database.obj
    run_operations(SchemaMigrator.from_database(db).drop_column("study", "patient_name"))
    SchemaVersion.delete().where(SchemaVersion.version == 5).execute()
    assert migrate() == [5]
    assert Study.get().patient_name == "OLD^NAME"   # filled from the login's name
    assert migrate() == []
