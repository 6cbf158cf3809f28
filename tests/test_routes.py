"""The route grammar (authsvc/decision/routes.py) on its own: what a request
line names, before anyone decides on it."""

import pytest

from authsvc.decision.routes import Kind, lua_cache_grammar, parse, plugin_target

S = "57000000-00000001-00000002-00000003-00000004"
UID = "1.2.840.113619.2.1"


WHAT_A_REQUEST_NAMES = [
    (f"/studies/{S}", Kind.RESOURCE),
    (f"/studies/{S}/archive", Kind.RESOURCE),
    (f"/studies/{S}/metadata/1024", Kind.RESOURCE),
    (f"/instances/{S}/frames/0/rendered", Kind.RESOURCE),
    (f"/instances/{S}/rendered?window-center=40&window-width=400", Kind.RESOURCE),
    (f"/web-viewer/instances/jpeg95-{S}_0", Kind.RESOURCE),
    (f"/studies/{S}/patient", Kind.PATIENT),
    (f"/series/{S}/patient", Kind.PATIENT),
    (f"/instances/{S}/patient", Kind.PATIENT),
    (f"/patients/{S}", Kind.PATIENT),
    (f"/patients/{S}/archive", Kind.PATIENT),
    (f"/studies/{S}/patient/x", Kind.OTHER),
    (f"/studies/{S}/series/x", Kind.OTHER),
    (f"/studies/{S}/reconstruct", Kind.OTHER),
    (f"/studies/{S}/unknown", Kind.OTHER),
    (f"/studies/{S}/", Kind.MALFORMED),
    (f"/studies/{S}/../{S}", Kind.MALFORMED),
    (f"/studies/{S}//archive", Kind.MALFORMED),
    (f"/studies/{S}%2farchive", Kind.MALFORMED),
    (f"/studies/{S}?a=<script>", Kind.MALFORMED),
    ("/web-viewer/app/viewer.html", Kind.ASSET),
    ("/stone-webviewer/index.html", Kind.ASSET),
    (f"/dicom-web/studies/{UID}", Kind.DICOMWEB),
    (
        f"/dicom-web/studies/{UID}/series?Modality=CT&includefield=00080021&includefield=0008103E",
        Kind.DICOMWEB,
    ),
    (f"/dicom-web/studies/{UID}/series?StudyInstanceUID=1.2", Kind.MALFORMED),
    (f"/dicom-web/studies/{UID}/series?0020000d=1.2", Kind.MALFORMED),
    (f"/dicom-web/studies/{UID}/series?NotAKeyword=1", Kind.MALFORMED),
    (f"/dicom-web/studies/{UID}/series?Modality=CT&00080060=MR", Kind.MALFORMED),
    (f"/dicom-web/studies?StudyInstanceUID={UID}", Kind.SEARCH),
    (f"/dicom-web/studies?0020000D={UID}&includefield=all", Kind.SEARCH),
    (f"/dicom-web/series?StudyInstanceUID={UID},1.2.3", Kind.SEARCH),
    (f"/dicom-web/instances?StudyInstanceUID={UID}%5C1.2.3", Kind.SEARCH),
    ("/dicom-web/studies?PatientID=V-123", Kind.SEARCH),
    (f"/dicom-web/instances?0020000D={UID}&StudyInstanceUID=1.2.3", Kind.MALFORMED),
    (f"/dicom-web/studies?StudyInstanceUID={UID}*", Kind.MALFORMED),
    ("/dicom-web/studies?PatientID=V-1*", Kind.MALFORMED),
    ("/dicom-web/studies?PatientID=", Kind.MALFORMED),
    ("/dicom-web/studies?PatientName=DOE*", Kind.OTHER),
    ("/dicom-web/studies", Kind.OTHER),
    (f"/tools/create-archive?resources={S}", Kind.ARCHIVE),
    (f"/tools/create-media-extended?resources={S},{S}&filename=x.zip", Kind.ARCHIVE),
    (f"/tools/create-archive?resources={S}&resources={S}", Kind.MALFORMED),
    (f"/tools/create-archive?resources={S}&level=patient", Kind.MALFORMED),
    ("/tools/create-archive?resources=", Kind.MALFORMED),
    ("/tools/create-archive", Kind.MALFORMED),
    ("/tools/lookup", Kind.OTHER),  # a GET there is not a search
    ("/patients", Kind.OTHER),
    ("/system", Kind.OTHER),
    ("/", Kind.OTHER),
]


@pytest.mark.parametrize("uri,kind", WHAT_A_REQUEST_NAMES)
def test_what_a_request_names(uri, kind):
    assert parse("GET", uri).kind is kind, uri


def test_the_parse_keeps_what_the_decision_needs():
    t = parse("HEAD", f"/series/{S}/patient")
    assert (t.method, t.kind, t.level, t.orthanc_id) == ("GET", Kind.PATIENT, "series", S)
    t = parse("GET", f"/dicom-web/studies/{UID}/series/1.2.3/instances/1.2.3.4/frames/1")
    assert t.uids == (UID, "1.2.3", "1.2.3.4")
    t = parse("GET", f"/dicom-web/studies?StudyInstanceUID={UID}%5C1.2.3&PatientID=V-1")
    assert (t.study_uids, t.patient_id) == ((UID, "1.2.3"), "V-1")
    assert parse("GET", f"/tools/create-archive?resources={S},{S}").resources == (S, S)
    assert parse("POST", "/tools/create-archive").kind is Kind.OTHER  # a body names them


def test_plugin_questions_read_as_their_own_routes():
    assert plugin_target("get", "study", S, UID) == parse("GET", f"/studies/{S}").__class__(
        "GET", Kind.RESOURCE, level="studies", orthanc_id=S, expected_uid=UID
    )
    assert plugin_target("get", "patient", S).kind is Kind.PATIENT
    assert plugin_target("get", "instance", "not-an-id").kind is Kind.MALFORMED
    assert plugin_target("get", "system", S).kind is Kind.MALFORMED


def test_the_lua_cache_never_covers_the_climb_to_the_patient():
    grammar = lua_cache_grammar()
    assert set(grammar["CacheableTails"]) == {"studies", "series", "instances"}
    for tails in grammar["CacheableTails"].values():
        assert "patient" not in tails and "" in tails


def test_nginx_configs_let_through_exactly_the_hot_reads():
    import re
    from pathlib import Path

    from authsvc.decision.routes import hot_reads_regex
    from deploy.nginx import nginx_config
    from deploy.site import SITE_DEFAULTS

    docker = (Path(__file__).resolve().parent.parent / "deploy/docker/locations.inc").read_text()
    packaged = nginx_config(
        dict(SITE_DEFAULTS, authsvc={}),
        {"proxy_password": "p", "forwarded_secret": "f"},
        Path("/x"),
    )
    for conf in (docker, packaged):
        assert f'location ~ "{hot_reads_regex()}"' in conf
        assert len(re.findall(r"location ~", conf)) == 1
    hot = re.compile(hot_reads_regex())
    for uri, kind in [(u, k) for u, k in WHAT_A_REQUEST_NAMES if "?" not in u]:
        if hot.match("/orthanc" + uri):
            assert kind in (Kind.RESOURCE, Kind.ASSET), uri
    assert hot.match(f"/orthanc/instances/{S}/frames/0/rendered")
    assert not hot.match(f"/orthanc/instances/{S}/patient")
    assert not hot.match(f"/orthanc/patients/{S}")
