"""The core path on the real stack: a study sent with storescu becomes stable,
the patient gets a login, and that login opens that patient's studies through
nginx and Orthanc's Lua filter, and nothing else."""

import time
import uuid

import pytest

from tests.dicom_samples import recorded, send_patient
from tests.helpers import DECISION_CACHE_SECONDS, Browser, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def world(stack, orthanc, admin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dicom")
    suffix = uuid.uuid4().hex[:6]
    a = send_patient(stack, orthanc, tmp, f"PA-{suffix}", "NÚÑEZ^JOSÉ", "ISO_IR 192")
    b = send_patient(stack, orthanc, tmp, f"PB-{suffix}", "PEÑA^ÁNGELA", "ISO_IR 100")
    for p in (a, b):
        row = wait_for(lambda p=p: recorded(admin, p["study"]), 30, what="study recorded")
        assert row["patient_has_login"] is True
        r = admin.post(f"/api/patients/{p['pid']}/credentials", json={})
        assert r.status_code == 200, r.text
        p["password"] = r.json()["password"]
    return {"A": a, "B": b}


@pytest.fixture(scope="module")
def patient_a(stack, world):
    b = Browser(stack.public_url)
    r = b.login(patient_id=world["A"]["pid"], password=world["A"]["password"])
    assert r.status_code == 200, r.text
    return b


def test_study_recorded_with_tags_from_every_series(world, admin):
    row = recorded(admin, world["A"]["study"])
    assert row["patient_id"] == world["A"]["pid"]
    assert row["patient_name"] == "NÚÑEZ^JOSÉ"
    assert row["study_instance_uid"] == world["A"]["study_uid"]
    assert row["modalities"] == ["CT", "MR"]
    assert row["date"] == "20261128"
    assert row["description"] == "TORAX"
    # Performing physicians differ per series: both were read, decoded from UTF-8.
    assert row["access_tags"]["PerformingPhysicianName"] == ["NÚÑEZ^JOSÉ", "PEREZ^JUAN"]
    assert row["access_tags"]["ReferringPhysicianName"] == ["GÓMEZ^MARÍA"]
    assert row["access_tags"]["InstitutionName"] == ["Hospital Universitario"]


def test_latin1_names_decoded(world, admin):
    row = recorded(admin, world["B"]["study"])
    assert row["patient_name"] == "PEÑA^ÁNGELA"
    assert row["access_tags"]["ReferringPhysicianName"] == ["GÓMEZ^MARÍA"]


def test_issued_password_logs_in_and_wrong_one_does_not(stack, world):
    b = Browser(stack.public_url)
    r = b.login(patient_id=world["A"]["pid"], password="wrong-pass-word")
    assert r.status_code == 401
    assert r.json()["error"] == "bad_credentials"
    assert not b.http.cookies
    r = b.login(patient_id=world["A"]["pid"], password=world["A"]["password"].upper())
    assert r.status_code == 200
    assert r.json() == {"kind": "patient", "patient_id": world["A"]["pid"], "name": "NÚÑEZ^JOSÉ"}
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_reissued_password_replaces_the_old_one(stack, world, admin):
    pid = world["B"]["pid"]
    old = world["B"]["password"]
    holder = Browser(stack.public_url)
    assert holder.login(patient_id=pid, password=old).status_code == 200
    new = admin.post(f"/api/patients/{pid}/credentials", json={}).json()["password"]
    world["B"]["password"] = new
    assert Browser(stack.public_url).login(patient_id=pid, password=old).status_code == 401
    assert holder.get("/api/session").status_code == 401  # sessions of the old password end
    assert Browser(stack.public_url).login(patient_id=pid, password=new).status_code == 200


def test_patient_lists_only_own_studies(patient_a, world):
    studies = patient_a.get("/api/studies").json()["studies"]
    assert [s["orthanc_id"] for s in studies] == [world["A"]["study"]]


OWN_ROUTES = [
    "/studies/{study}",
    "/studies/{study}/series",
    "/series/{series}",
    "/instances/{instance}/file",
    "/instances/{instance}/preview",
    "/instances/{instance}/simplified-tags",
    "/patients/{patient}",
    "/studies/{study}/archive",
    "/web-viewer/series/{series}",
    "/web-viewer/is-stable-series/{series}",
    "/web-viewer/instances/jpeg95-{instance}_0",
    "/dicom-web/studies/{study_uid}/metadata",
    "/dicom-web/studies/{study_uid}/series/{series_uid}/metadata",
    "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}",
    "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/rendered",
]


@pytest.mark.parametrize("route", OWN_ROUTES)
def test_patient_reads_own_resources(patient_a, world, route):
    r = patient_a.get("/orthanc" + route.format(**world["A"]))
    assert r.status_code == 200, (route, r.status_code)
    assert r.content


# Every other GET route Orthanc 1.10 (and its plugins) offers below a resource:
# a patient's token reaches them all for their own study (any GET below an own
# resource is a read of it), so each is exercised; the answer may be 4xx from
# Orthanc when the data does not fit (no PDF, no attachment) but never the
# filter's 403, and never another patient's data (the denial list below).
OTHER_OWN_GETS = [
    "/patients/{patient}/studies",
    "/patients/{patient}/series",
    "/patients/{patient}/instances",
    "/patients/{patient}/shared-tags",
    "/patients/{patient}/statistics",
    "/patients/{patient}/metadata",
    "/patients/{patient}/attachments",
    "/patients/{patient}/archive",
    "/patients/{patient}/media",
    "/patients/{patient}/module",
    "/patients/{patient}/protected",
    "/studies/{study}/instances",
    "/studies/{study}/patient",
    "/studies/{study}/shared-tags",
    "/studies/{study}/statistics",
    "/studies/{study}/metadata",
    "/studies/{study}/attachments",
    "/studies/{study}/media",
    "/studies/{study}/module",
    "/studies/{study}/module-patient",
    "/series/{series}/instances",
    "/series/{series}/study",
    "/series/{series}/patient",
    "/series/{series}/shared-tags",
    "/series/{series}/statistics",
    "/series/{series}/ordered-slices",
    "/series/{series}/archive",
    "/series/{series}/media",
    "/series/{series}/module",
    "/series/{series}/metadata",
    "/series/{series}/attachments",
    "/series/{series}/numpy",
    "/instances/{instance}",
    "/instances/{instance}/tags",
    "/instances/{instance}/header",
    "/instances/{instance}/content",
    "/instances/{instance}/content/0010-0010",
    "/instances/{instance}/frames",
    "/instances/{instance}/frames/0/preview",
    "/instances/{instance}/frames/0/rendered",
    "/instances/{instance}/frames/0/image-uint8",
    "/instances/{instance}/frames/0/image-uint16",
    "/instances/{instance}/frames/0/raw",
    "/instances/{instance}/image-int16",
    "/instances/{instance}/rendered",
    "/instances/{instance}/matlab",
    "/instances/{instance}/numpy",
    "/instances/{instance}/pdf",
    "/instances/{instance}/statistics",
    "/instances/{instance}/study",
    "/instances/{instance}/series",
    "/instances/{instance}/patient",
    "/instances/{instance}/metadata",
    "/instances/{instance}/metadata/TransferSyntax",
    "/instances/{instance}/attachments",
    "/instances/{instance}/module",
    "/dicom-web/studies/{study_uid}",
    "/dicom-web/studies/{study_uid}/series",
    "/dicom-web/studies/{study_uid}/instances",
    "/dicom-web/studies/{study_uid}/series/{series_uid}",
    "/dicom-web/studies/{study_uid}/series/{series_uid}/instances",
    "/dicom-web/studies/{study_uid}/series/{series_uid}/rendered",
    "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/metadata",
    "/dicom-web/studies/{study_uid}/series/{series_uid}/instances/{sop_uid}/frames/1",
    "/web-viewer/app/viewer.html",
]


@pytest.mark.parametrize("route", OTHER_OWN_GETS)
def test_patient_reaches_every_read_of_own_study(patient_a, world, route):
    r = patient_a.get("/orthanc" + route.format(**world["A"]))
    assert r.status_code != 403, route
    assert r.status_code < 500, (route, r.status_code)


# Every route below must be refused to patient A: B's resources by every way
# Orthanc names them, every list, search and system route, and every write.
DENIED = [
    ("GET", "/studies/{B[study]}"),
    ("GET", "/studies/{B[study]}/archive"),
    ("GET", "/series/{B[series]}"),
    ("GET", "/instances/{B[instance]}/file"),
    ("GET", "/instances/{B[instance]}/preview"),
    ("GET", "/patients/{B[patient]}"),
    ("GET", "/web-viewer/series/{B[series]}"),
    ("GET", "/web-viewer/is-stable-series/{B[series]}"),
    ("GET", "/web-viewer/instances/jpeg95-{B[instance]}_0"),
    ("GET", "/dicom-web/studies/{B[study_uid]}/metadata"),
    ("GET", "/dicom-web/studies/{B[study_uid]}"),
    ("GET", "/dicom-web/studies/{A[study_uid]}/series/{B[series_uid]}/metadata"),
    ("GET", "/dicom-web/studies/{A[study_uid]}/series/{A[series_uid]}/instances/{B[sop_uid]}"),
    ("GET", "/studies/{A[study]}/../{B[study]}"),
    ("GET", "/patients"),
    ("GET", "/patients?expand"),
    ("GET", "/studies"),
    ("GET", "/series"),
    ("GET", "/instances"),
    ("POST", "/tools/find"),
    ("POST", "/tools/lookup"),
    ("POST", "/tools/create-archive"),
    ("GET", "/tools/now"),
    ("GET", "/changes"),
    ("GET", "/exports"),
    ("GET", "/system"),
    ("GET", "/statistics"),
    ("GET", "/modalities"),
    ("GET", "/peers"),
    ("GET", "/jobs"),
    ("GET", "/plugins"),
    ("GET", "/app/explorer.html"),
    ("GET", "/"),
    ("GET", "/dicom-web/studies"),
    ("GET", "/dicom-web/studies?PatientID={B[pid]}"),
    ("GET", "/dicom-web/studies?PatientID={A[pid]}&PatientID={B[pid]}"),
    ("GET", "/dicom-web/studies?StudyInstanceUID={B[study_uid]}"),
    ("GET", "/studies/{A[study]}/patient/../../patients"),
    ("GET", "/tools/create-archive?resources={A[study]},{B[patient]}"),
    ("GET", "/dicom-web/series"),
    ("GET", "/dicom-web/instances"),
    ("GET", "/dicom-web/servers"),
    ("GET", "/wado?requestType=WADO&studyUID={A[study_uid]}"),
    ("PROPFIND", "/webdav/"),
    ("DELETE", "/studies/{A[study]}"),
    ("DELETE", "/patients/{A[patient]}"),
    ("DELETE", "/instances/{A[instance]}"),
    ("POST", "/studies/{A[study]}/modify"),
    ("POST", "/studies/{A[study]}/anonymize"),
    ("PUT", "/studies/{A[study]}/metadata/1024"),
    ("POST", "/instances"),
    ("PUT", "/modalities/EVIL"),
    ("POST", "/modalities/STORESCU/store"),
    ("POST", "/tools/execute-script"),
    ("POST", "/tools/reset"),
]


def denied_cases():
    return [pytest.param(m, r, id=f"{m} {r}") for m, r in DENIED]


@pytest.mark.parametrize("method,route", denied_cases())
def test_patient_refused(patient_a, world, method, route):
    r = patient_a.request(method, "/orthanc" + route.format(**world), data="{}")
    assert r.status_code == 403, (method, route, r.status_code)


@pytest.mark.parametrize("route", OWN_ROUTES[:4] + ["/system", "/patients"])
def test_no_session_gets_nothing(stack, world, route):
    r = Browser(stack.public_url).get("/orthanc" + route.format(**world["A"]))
    assert r.status_code == 403


def test_forged_or_client_basic_auth_does_not_pass(stack, world):
    b = Browser(stack.public_url)
    r = b.get("/orthanc/studies/" + world["A"]["study"], auth=("authsvc", "guess"))
    assert r.status_code == 403
    b.http.cookies.set("authsvc_session", "x" * 43)
    assert b.get("/orthanc/studies/" + world["A"]["study"]).status_code == 403


def test_admin_reads_everything(admin, world):
    assert admin.get("/orthanc/patients").status_code == 200
    assert admin.get("/orthanc/studies/" + world["B"]["study"]).status_code == 200
    assert admin.get("/orthanc/system").status_code == 200


def test_logout_closes_orthanc_within_cache_validity(stack, world):
    b = Browser(stack.public_url)
    assert b.login(patient_id=world["A"]["pid"], password=world["A"]["password"]).status_code == 200
    routes = ["/orthanc" + r.format(**world["A"]) for r in OWN_ROUTES[:4]]
    assert all(b.get(r).status_code == 200 for r in routes)
    token = b.http.cookies.get("authsvc_session")
    assert b.logout().status_code == 200
    assert b.get("/api/studies").status_code == 401
    # A client that kept the token (a copied cookie) is refused as well, once
    # the filter's cache of the grant has expired.
    thief = Browser(stack.public_url)
    thief.http.cookies.set("authsvc_session", token)
    assert thief.get("/api/studies").status_code == 401
    time.sleep(DECISION_CACHE_SECONDS + 1.1)
    for r in routes:
        assert thief.get(r).status_code == 403, r


# Routes newer than Orthanc 1.10 (`make test-orthanc-1.12` runs 1.12.7), with
# the version that added each: those naming another patient's study, and the
# label routes, are refused to a patient like every other list or write. On
# an older Orthanc the filter refuses them before Orthanc finds no route.
NEWER_DENIED = [
    ("GET", "/tools/create-archive?resources={B[study]}", (1, 12, 2)),
    ("GET", "/tools/create-media?resources={B[study]}", (1, 12, 2)),
    ("GET", "/tools/create-media-extended?resources={B[study]}", (1, 12, 2)),
    ("GET", "/tools/labels", (1, 12, 0)),
    ("GET", "/studies/{B[study]}/labels", (1, 12, 0)),
    ("PUT", "/studies/{A[study]}/labels/probe", (1, 12, 0)),
    ("DELETE", "/studies/{A[study]}/labels/probe", (1, 12, 0)),
    ("GET", "/dicom-web/studies/{B[study_uid]}/thumbnail", None),  # DICOMweb plugin 1.15
]


@pytest.mark.parametrize(
    "method,route,since", NEWER_DENIED, ids=[f"{m} {r}" for m, r, _ in NEWER_DENIED]
)
def test_patient_refused_routes_newer_than_1_10(patient_a, world, method, route, since):
    r = patient_a.request(method, "/orthanc" + route.format(**world), data="{}")
    assert r.status_code == 403, (method, route, r.status_code)


NEWER_GETS = [(m, r, since) for m, r, since in NEWER_DENIED if m == "GET" and since]


@pytest.mark.parametrize("method,route,since", NEWER_GETS, ids=[r for _, r, _ in NEWER_GETS])
def test_newer_routes_are_real_on_this_orthanc(admin, world, orthanc_version, method, route, since):
    """The refusals above are the filter's, of a route that exists (admins get it)."""
    if orthanc_version < since:
        pytest.skip(
            f"Orthanc {'.'.join(map(str, orthanc_version))} has no {method} {route.split('?')[0]} "
            f"(added in {'.'.join(map(str, since))})"
        )
    r = admin.request(method, "/orthanc" + route.format(**world))
    assert r.status_code == 200, (route, r.status_code)
