"""The decision function on its own, over a real SQLite database."""

import pytest

from authsvc import ingest
from authsvc.decision import decide_uri
from authsvc.decision.principals import PatientPrincipal, StaffPrincipal
from authsvc.models import Patient, StaffUser, Study
from tests.helpers import fake_study


@pytest.fixture
def db(app):
    a, b = fake_study("PA", "1"), fake_study("PB", "2")
    ingest.store_study(a["study_orthanc_id"], a)
    ingest.store_study(b["study_orthanc_id"], b)
    pa = Patient.get(Patient.patient_id == "PA")
    pb = Patient.get(Patient.patient_id == "PB")
    admin = StaffUser.create(username="admin", role="admin", password_hash="x")
    radiologist = StaffUser.create(username="rad", role="radiologist", password_hash="x")
    return {
        "A": a,
        "B": b,
        "pa": PatientPrincipal(1, patient=pa),
        "pb": PatientPrincipal(2, patient=pb),
        "admin": StaffPrincipal(3, staff=admin),
        "rad": StaffPrincipal(4, staff=radiologist),
    }


def own_paths(s):
    study, series, inst = s["study_orthanc_id"], s["series"][1][0], s["instances"][3][0]
    su, seu, sop = s["tags"]["StudyInstanceUID"], s["series"][1][1], s["instances"][3][1]
    return [
        f"/studies/{study}",
        f"/studies/{study}/archive",
        f"/series/{series}/media",
        f"/instances/{inst}/file",
        f"/instances/{inst}/frames/0/rendered",
        f"/web-viewer/series/{series}",
        f"/web-viewer/is-stable-series/{series}",
        f"/web-viewer/instances/jpeg95-{inst}_0",
        f"/dicom-web/studies/{su}",
        f"/dicom-web/studies/{su}/metadata",
        f"/dicom-web/studies/{su}/series/{seu}/rendered",
        f"/dicom-web/studies/{su}/series/{seu}/instances/{sop}/frames/1",
        f"/patients/{s['patient_orthanc_id']}",
    ]


def test_patient_reads_own_study_everywhere_and_no_other(db):
    for path in own_paths(db["A"]):
        assert decide_uri(db["pa"], "GET", path).granted, path
        assert not decide_uri(db["pb"], "GET", path).granted, path


def test_grant_covers_every_id_of_the_study_and_nothing_else(db):
    d = decide_uri(db["pa"], "GET", f"/instances/{db['A']['instances'][0][0]}/file")
    keys = set(d.keys)
    assert {i for i, _ in db["A"]["instances"]} <= keys
    assert {i for i, _ in db["A"]["series"]} <= keys
    assert not {i for i, _ in db["B"]["instances"]} & keys
    # UIDs are never keys: another patient's study may have the same one.
    assert not {u for _, u in db["A"]["series"] + db["A"]["instances"]} & keys
    assert db["A"]["tags"]["StudyInstanceUID"] not in keys


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_patient_never_writes(db, method):
    for path in own_paths(db["A"]):
        assert not decide_uri(db["pa"], method, path).granted


@pytest.mark.parametrize(
    "path",
    [
        "/patients",
        "/studies",
        "/series",
        "/instances",
        "/tools/find",
        "/changes",
        "/system",
        "/statistics",
        "/modalities",
        "/peers",
        "/jobs",
        "/app/explorer.html",
        "/",
        "/dicom-web/studies",
        "/dicom-web/series",
        "/wado",
        "/webdav/",
        "/plugins",
        "/studies/{A}/../../studies/{B}",
        "/studies/{A}//archive",
        "/studies/{A}/%2e%2e/x",
        "/studies/{A}x",
        "/studies/{A}/",
        "/web-viewer/series/{A}",
        "/studies/{A}\n",
    ],
)
def test_patient_refused_outside_own_studies(db, path):
    path = path.format(A=db["A"]["study_orthanc_id"], B=db["B"]["study_orthanc_id"])
    assert not decide_uri(db["pa"], "GET", path).granted


def test_dicomweb_uids_must_all_belong_to_the_study(db):
    su = db["A"]["tags"]["StudyInstanceUID"]
    other_series = db["B"]["series"][0][1]
    other_sop = db["B"]["instances"][0][1]
    assert not decide_uri(db["pa"], "GET", f"/dicom-web/studies/{su}/series/{other_series}").granted
    own_series = db["A"]["series"][0][1]
    assert not decide_uri(
        db["pa"], "GET", f"/dicom-web/studies/{su}/series/{own_series}/instances/{other_sop}"
    ).granted


def test_study_uid_shared_between_patients_is_refused_to_both(db):
    Study.update(study_uid=db["A"]["tags"]["StudyInstanceUID"]).where(
        Study.orthanc_id == db["B"]["study_orthanc_id"]
    ).execute()
    path = f"/dicom-web/studies/{db['A']['tags']['StudyInstanceUID']}/metadata"
    assert not decide_uri(db["pa"], "GET", path).granted
    assert not decide_uri(db["pb"], "GET", path).granted
    assert decide_uri(db["admin"], "GET", path).granted


def test_viewer_assets_open_to_any_session_but_not_to_none(db):
    assert decide_uri(db["pa"], "GET", "/web-viewer/app/viewer.html").granted
    assert not decide_uri(None, "GET", "/web-viewer/app/viewer.html").granted


def test_staff(db):
    assert decide_uri(db["admin"], "DELETE", "/patients").scope == "all"
    assert decide_uri(db["rad"], "GET", "/patients").granted
    # Searches change nothing; no other POST for radiologists.
    assert decide_uri(db["rad"], "POST", "/tools/find").granted
    assert not decide_uri(db["rad"], "POST", "/tools/reset").granted
    assert not decide_uri(db["rad"], "POST", "/tools/find/x").granted
    assert not decide_uri(db["rad"], "DELETE", f"/studies/{db['A']['study_orthanc_id']}").granted


def test_no_session_gets_nothing(db):
    for path in own_paths(db["A"]):
        assert not decide_uri(None, "GET", path).granted
