"""Who a study belongs to, in-process (no Orthanc): PatientIDs recorded as
sent, never merged."""

import pytest

from authsvc import ingest, passwords
from authsvc.cli import ensure_admin
from authsvc.models import Patient, StaffUser
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
