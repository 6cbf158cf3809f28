"""The Lua filter's cache against the service's route grammar.

lua/request-filter.lua runs here in Lua 5.4 (lupa), with Orthanc's Lua API
(GetOrthancConfiguration, HttpPost, DumpJson, ParseJson) played by Python:
Orthanc's own embedded Lua cannot be driven request by request without a
server, and tests/test_confinement.py runs the real one. The configuration
is the one the launcher writes (deploy.site.orthanc_local_config), so the
cache's grammar comes from authsvc/decision/routes.py as in production.

The property: after a grant of a study, a request answered from the cache
is one the service's grammar reads as a read of a resource of that study
(or a viewer asset), and nothing else: no patient record, no DICOMweb UID,
no query string, no unknown tail."""

import json
from pathlib import Path

import pytest
from lupa import lua54

from authsvc.decision import routes
from deploy.site import SITE_DEFAULTS, orthanc_local_config

LUA = Path(__file__).resolve().parent.parent / "lua" / "request-filter.lua"
TOKEN = "t" * 43
STUDY = "57000000-00000001-00000002-00000003-00000004"
SERIES = "5e000000-00000001-00000002-00000003-00000004"
INSTANCE = "1a000000-00000001-00000002-00000003-00000004"
OTHER = "1a000000-ffffffff-00000002-00000003-00000004"
PATIENT = "000000ba-00000001-00000000-00000000-00000000"
UID = "1.2.3.4"


class FakeOrthanc:
    """The filter as Orthanc runs it, and the service's answers it gets."""

    def __init__(self, tmp_path):
        secrets = {"orthanc_password": "x", "proxy_password": "y", "ingest_secret": "s" * 40}
        config = orthanc_local_config(dict(SITE_DEFAULTS, authsvc={}), secrets, tmp_path)
        self.asked = []
        self.keys = [STUDY, SERIES, INSTANCE]
        lua = lua54.LuaRuntime(unpack_returned_tuples=True)
        g = lua.globals()
        g.GetOrthancConfiguration = lambda: lua.table_from(
            json.loads(json.dumps(config)), recursive=True
        )
        g.DumpJson = lambda value, compact=True: json.dumps(_plain(value))
        g.ParseJson = lambda text: lua.table_from(json.loads(text), recursive=True)
        g.HttpPost = self._post
        g.print = lambda *args: None
        lua.execute(LUA.read_text())
        self.filter = g.IncomingHttpRequestFilter
        self.lua = lua

    def _post(self, url, body, headers):
        question = json.loads(body)
        self.asked.append(question["uri"])
        return json.dumps({"granted": True, "validity": 60, "scope": "keys", "keys": self.keys})

    def request(self, uri, query=None, method="GET"):
        headers = {"token": TOKEN}
        if query:
            headers["x-authsvc-query"] = query
        before = len(self.asked)
        allowed = self.filter(method, uri, "127.0.0.1", "nginx", self.lua.table_from(headers))
        return allowed, len(self.asked) == before


def _plain(value):
    try:
        return {k: _plain(v) for k, v in value.items()}
    except AttributeError:
        return value


@pytest.fixture
def orthanc(tmp_path):
    fake = FakeOrthanc(tmp_path)
    allowed, cached = fake.request(f"/studies/{STUDY}")  # the grant that warms the cache
    assert allowed and not cached
    return fake


# Every shape the grammar knows, and shapes close to them.
URIS = [
    f"/studies/{STUDY}",
    f"/studies/{STUDY}/series",
    f"/studies/{STUDY}/archive",
    f"/studies/{STUDY}/metadata/1024",
    f"/studies/{STUDY}/patient",
    f"/studies/{STUDY}/patient/x",
    f"/studies/{STUDY}/module-patient",
    f"/studies/{STUDY}/series/extra",
    f"/studies/{STUDY}/",
    f"/studies/{STUDY}/unknown-tail",
    f"/series/{SERIES}/patient",
    f"/series/{SERIES}/study",
    f"/series/{SERIES}/ordered-slices",
    f"/instances/{INSTANCE}/file",
    f"/instances/{INSTANCE}/frames/0/preview",
    f"/instances/{INSTANCE}/frames/0/",
    f"/instances/{INSTANCE}/patient",
    f"/instances/{INSTANCE}/content/0010-0010",
    f"/instances/{OTHER}/file",
    f"/patients/{PATIENT}",
    f"/patients/{STUDY}",
    f"/patients/{STUDY}/archive",
    f"/web-viewer/series/{SERIES}",
    f"/web-viewer/is-stable-series/{SERIES}",
    f"/web-viewer/instances/jpeg95-{INSTANCE}_0",
    f"/web-viewer/instances/jpeg95-{OTHER}_0",
    "/web-viewer/app/viewer.html",
    f"/dicom-web/studies/{UID}",
    f"/dicom-web/studies/{UID}/series",
    f"/dicom-web/studies/{UID}/metadata",
    "/dicom-web/studies",
    f"/studies/{STUDY}/../x",
    f"/studies/{STUDY}%2fpatient",
    "/studies",
    "/patients",
    "/tools/create-archive",
    "/system",
]


@pytest.mark.parametrize("uri", URIS)
def test_a_cached_answer_is_a_read_the_grammar_grants_the_study(orthanc, uri):
    allowed, cached = orthanc.request(uri)
    if not cached:
        return  # asked the service: its decision applies
    assert allowed
    target = routes.parse("GET", uri)
    assert target.kind in (routes.Kind.RESOURCE, routes.Kind.ASSET), (uri, target)
    if target.kind is routes.Kind.RESOURCE:
        assert target.orthanc_id in orthanc.keys, uri


@pytest.mark.parametrize(
    "uri",
    [
        u
        for u in URIS
        if routes.parse("GET", u).kind is routes.Kind.RESOURCE
        and routes.parse("GET", u).orthanc_id in (STUDY, SERIES, INSTANCE)
    ],
)
def test_reads_of_the_granted_study_are_cached(orthanc, uri):
    """The cache does its work: a viewer's hundreds of requests cost one question."""
    assert orthanc.request(uri) == (True, True)


def test_a_query_string_is_always_asked_and_passed_on(orthanc):
    allowed, cached = orthanc.request(f"/instances/{INSTANCE}/rendered", "window-center=40")
    assert allowed and not cached
    assert orthanc.asked[-1] == f"/instances/{INSTANCE}/rendered?window-center=40"


def test_writes_are_never_cached(orthanc):
    for method in ("POST", "PUT", "DELETE"):
        allowed, cached = orthanc.request(f"/studies/{STUDY}", method=method)
        assert not cached
