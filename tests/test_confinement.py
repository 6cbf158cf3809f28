"""Confinement on the real stack, as modalities really send DICOM.

Two patients whose studies share one StudyInstanceUID (a CR that restarts its
counter), a rule login and a share that see one study of a patient who has
two, a radiologist and an admin. Every principal runs the same list of
method x route x query cases through nginx (every layer) and straight at
Orthanc's port as nginx's own Orthanc user (the Lua filter alone, with its
cache warmed), so that each lock is seen to hold on its own."""

import json
import uuid

import pytest
import requests

from authsvc.cli import set_rule_password
from deploy.site import PROXY_USER
from tests.dicom_samples import SeriesSpec, StudySpec, recorded, storescu, write_study
from tests.helpers import Browser, wait_for
from tests.route_matrix import matrix_cases

pytestmark = pytest.mark.stack

RULE_LOGIN = "dr-confine"


def _ids(orthanc, uid, level):
    found = orthanc.post(orthanc.base + "/tools/lookup", data=uid).json()
    return [f["ID"] for f in found if f["Type"] == level]


def _send(stack, orthanc, folder, spec, study_uid=None):
    if study_uid:
        spec.tags["StudyInstanceUID"] = study_uid
    written = write_study(spec, folder)
    result = storescu(written.files, stack.site["dicom_port"])
    assert result.returncode == 0, result.stderr
    uid = study_uid or written.study_uid
    series = _ids(orthanc, written.series_uids[0], "Series")[0]
    instance = _ids(orthanc, written.sop_uids[0], "Instance")[0]
    study = orthanc.get(f"{orthanc.base}/series/{series}").json()["ParentStudy"]
    patient = orthanc.get(f"{orthanc.base}/studies/{study}").json()["ParentPatient"]
    return {
        "pid": spec.patient_id,
        "study": study,
        "series": series,
        "instance": instance,
        "patient": patient,
        "study_uid": uid,
        "series_uid": written.series_uids[0],
        "sop_uid": written.sop_uids[0],
    }


@pytest.fixture(scope="module")
def world(stack, orthanc, admin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("confine")
    suffix = uuid.uuid4().hex[:6]
    shared_uid = f"1.2.826.0.1.3680043.10.{int(suffix, 16)}"
    referring = f"CONFINE^RULE{suffix.upper()}"
    # A: two studies; the first has the UID that B's study has too.
    a1 = _send(
        stack,
        orthanc,
        tmp / "a1",
        StudySpec(
            f"CA-{suffix}",
            "NÚÑEZ^JOSÉ",
            [SeriesSpec("CT", 2)],
            tags={"ReferringPhysicianName": referring},
        ),
        shared_uid,
    )
    a2 = _send(
        stack,
        orthanc,
        tmp / "a2",
        StudySpec(f"CA-{suffix}", "NÚÑEZ^JOSÉ", [SeriesSpec("MR", 1)], description="CONTROL"),
    )
    b = _send(
        stack,
        orthanc,
        tmp / "b",
        StudySpec(f"CB-{suffix}", "PEÑA^ÁNGELA", [SeriesSpec("MR", 1)], charset="ISO_IR 100"),
        shared_uid,
    )
    for s in (a1, a2, b):
        wait_for(lambda s=s: recorded(admin, s["study"]), 30, what="study recorded")

    rules_path = stack.data_dir / "rules.json"
    saved_rules = rules_path.read_text()
    rules_path.write_text(
        json.dumps(
            {
                "logins": [
                    {
                        "login": RULE_LOGIN,
                        "rules": [{"tag": "ReferringPhysicianName", "value": referring}],
                    }
                ]
            }
        )
    )
    rule_password = set_rule_password(
        str(stack.data_dir / "rule-passwords.json"), str(rules_path), RULE_LOGIN
    )

    def login(**fields):
        browser = Browser(stack.public_url)
        r = browser.login(**fields)
        assert r.status_code == 200, (fields.keys(), r.text)
        return browser

    principals = {}
    for key, pid in (("patient", a1["pid"]), ("other", b["pid"])):
        password = admin.post(f"/api/patients/{pid}/credentials", json={}).json()["password"]
        principals[key] = login(patient_id=pid, password=password)
    share = principals["patient"].post("/api/shares", json={"study": a1["study"]}).json()
    principals["share"] = login(share=share["url"].split("#share=")[1])
    principals["rule"] = wait_for(
        lambda: _try_login(stack, RULE_LOGIN, rule_password), 10, what="rule login"
    )
    name = f"rad-{suffix}"
    r = admin.post("/staff/api/users", json={"username": name, "role": "radiologist"})
    assert r.status_code == 201, r.text
    principals["radiologist"] = login(username=name, password=r.json()["password"])
    principals["admin"] = admin
    principals["none"] = Browser(stack.public_url)
    yield {"A1": a1, "A2": a2, "B": b, "shared_uid": shared_uid, "p": principals}
    rules_path.write_text(saved_rules)


def _try_login(stack, name, password):
    browser = Browser(stack.public_url)
    return browser if browser.login(login=name, password=password).status_code == 200 else None


def token_of(browser):
    return browser.http.cookies.get("authsvc_session")


def direct(stack, browser, method, route):
    """The request as nginx forwards it, straight to Orthanc: nginx's own
    Orthanc user and the session token, the Lua filter the only lock."""
    headers = {}
    if token_of(browser):
        headers["token"] = token_of(browser)
    path, _, query = route.partition("?")
    if query:
        headers["X-Authsvc-Query"] = query
    return requests.request(
        method,
        stack.orthanc_url + route,
        headers=headers,
        data="{}",
        auth=(PROXY_USER, stack.secrets["proxy_password"]),
        timeout=10,
    )


# -- the findings, each on its own --------------------------------------------


def test_shared_study_uid_is_refused_cold_and_warm(stack, world):
    """A StudyInstanceUID two patients' studies share opens neither through
    DICOMweb, even after the patient opened their own study (a warm cache)."""
    a = world["p"]["patient"]
    uid = world["shared_uid"]
    routes = [
        f"/dicom-web/studies/{uid}/series",
        f"/dicom-web/studies/{uid}/instances",
        f"/dicom-web/studies/{uid}/metadata",
    ]
    for route in routes:
        assert a.get("/orthanc" + route).status_code == 403, route
    assert a.get(f"/orthanc/studies/{world['A1']['study']}").status_code == 200  # warms the cache
    for route in routes:
        for r in (a.get("/orthanc" + route), direct(stack, a, "GET", route)):
            assert r.status_code == 403, (route, r.status_code)
            assert world["B"]["series_uid"] not in r.text


CLIMBS = [
    "/studies/{A1[study]}/patient",
    "/series/{A1[series]}/patient",
    "/instances/{A1[instance]}/patient",
]


@pytest.mark.parametrize("who", ["rule", "share"])
@pytest.mark.parametrize("climb", CLIMBS)
def test_patient_level_is_for_the_patient_only(stack, world, who, climb):
    browser = world["p"][who]
    own = f"/studies/{world['A1']['study']}"
    assert browser.get("/orthanc" + own).status_code == 200  # sees the study; cache warm
    route = climb.format(**world)
    for r in (browser.get("/orthanc" + route), direct(stack, browser, "GET", route)):
        assert r.status_code == 403, (who, route, r.status_code)
        assert world["A2"]["study"] not in r.text
    assert world["p"]["patient"].get("/orthanc" + route).status_code == 200


def test_qido_for_own_study_uid_answers_that_study_only(world):
    a = world["p"]["patient"]
    uid = world["A2"]["study_uid"]
    r = a.get("/orthanc/dicom-web/studies", params={"StudyInstanceUID": uid})
    assert r.status_code == 200, r.status_code
    assert [s["0020000D"]["Value"][0] for s in r.json()] == [uid]
    for query in (
        {"StudyInstanceUID": world["B"]["study_uid"]},
        {"PatientID": world["B"]["pid"]},
        {"0020000D": uid, "StudyInstanceUID": world["B"]["study_uid"]},
        {"StudyInstanceUID": f"{uid},{world['B']['study_uid']}"},
        {"StudyInstanceUID": uid + "*"},
    ):
        assert a.get("/orthanc/dicom-web/studies", params=query).status_code == 403, query
    # The rule login sees A1 only, whose UID B's study shares: refused.
    r = world["p"]["rule"].get(
        "/orthanc/dicom-web/studies", params={"StudyInstanceUID": world["shared_uid"]}
    )
    assert r.status_code == 403


def test_bearer_token_opens_orthanc_routes(stack, world):
    token = token_of(world["p"]["patient"])
    bare = Browser(stack.public_url)
    route = f"/orthanc/studies/{world['A2']['study']}"
    assert bare.get(route, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert bare.get(route, headers={"Authorization": "Bearer " + "x" * 43}).status_code == 403
    other = f"/orthanc/studies/{world['B']['study']}"
    assert bare.get(other, headers={"Authorization": f"Bearer {token}"}).status_code == 403


def test_archive_of_resources_named_in_the_query(stack, world):
    """GET /tools/create-archive?resources= (Orthanc 1.12.2+) names what it
    zips in the query: every one must be the principal's, and a patient-level
    ID only the patient's own."""
    own, other = world["A1"], world["B"]
    for who in ("patient", "share", "rule"):
        browser = world["p"][who]
        for tool in ("create-archive", "create-media", "create-media-extended"):
            for resources in (
                f"{own['study']},{other['patient']}",
                f"{own['study']},{other['study']}",
                f"{own['study']},{world['A2']['patient']}"
                if who != "patient"
                else f"{own['study']},{other['series']}",
            ):
                r = browser.get(f"/orthanc/tools/{tool}", params={"resources": resources})
                assert r.status_code == 403, (who, tool, resources, r.status_code)


# -- the route matrix: every principal, the same cases, every layer -------------


@pytest.mark.parametrize("method,route,granted,who", list(matrix_cases()))
def test_route_matrix(stack, world, method, route, granted, who):
    browser = world["p"][who]
    target = route.format(**world)
    # A granted request first: the Lua filter's cache is warm for whoever has one.
    browser.get(f"/orthanc/studies/{world['A1']['study']}")
    through_nginx = browser.request(method, "/orthanc" + target, data="{}")
    statuses = [through_nginx.status_code, direct(stack, browser, method, target).status_code]
    for status in statuses:
        if granted:
            assert status != 403 and status < 500, (who, method, target, statuses)
        else:
            assert status == 403, (who, method, target, statuses)


# -- a real DICOMweb client -----------------------------------------------------


@pytest.fixture(scope="module")
def dicomweb_world(stack, orthanc, admin, world, tmp_path_factory):
    """A third study of patient A, with a UID of its own, that the rule login
    sees (its referring physician) and a share of its own opens."""
    tmp = tmp_path_factory.mktemp("dicomweb")
    referring = json.loads((stack.data_dir / "rules.json").read_text())["logins"][0]["rules"][0]
    a3 = _send(
        stack,
        orthanc,
        tmp / "a3",
        StudySpec(
            world["A1"]["pid"],
            "NÚÑEZ^JOSÉ",
            [SeriesSpec("CT", 2)],
            tags={"ReferringPhysicianName": referring["value"]},
            description="ABDOMEN",
        ),
    )
    wait_for(
        lambda: (recorded(admin, a3["study"]) or {}).get("rule_logins") == [RULE_LOGIN],
        30,
        what="study recorded and matched",
    )
    share = world["p"]["patient"].post("/api/shares", json={"study": a3["study"]}).json()
    holder = Browser(stack.public_url)
    assert holder.login(share=share["url"].split("#share=")[1]).status_code == 200
    return {
        "A3": a3,
        "tokens": {
            "patient": token_of(world["p"]["patient"]),
            "rule": token_of(world["p"]["rule"]),
            "share": token_of(holder),
        },
    }


@pytest.mark.parametrize("who", ["patient", "rule", "share"])
def test_a_dicomweb_client_reads_what_its_login_may_see(stack, world, dicomweb_world, who):
    from dicomweb_client.api import DICOMwebClient
    from requests import HTTPError

    client = DICOMwebClient(
        url=stack.public_url + "/orthanc/dicom-web",
        headers={"Authorization": "Bearer " + dicomweb_world["tokens"][who]},
    )
    a3 = dicomweb_world["A3"]
    found = client.search_for_studies(search_filters={"StudyInstanceUID": a3["study_uid"]})
    assert [s["0020000D"]["Value"][0] for s in found] == [a3["study_uid"]]
    series = client.search_for_series(study_instance_uid=a3["study_uid"])
    assert a3["series_uid"] in [s["0020000E"]["Value"][0] for s in series]
    metadata = client.retrieve_study_metadata(a3["study_uid"])
    assert {m["00100020"]["Value"][0] for m in metadata} == {a3["pid"]}
    instance = client.retrieve_instance(a3["study_uid"], a3["series_uid"], a3["sop_uid"])
    assert instance.SOPInstanceUID == a3["sop_uid"]
    frames = client.retrieve_instance_rendered(
        a3["study_uid"], a3["series_uid"], a3["sop_uid"], media_types=("image/png",)
    )
    assert frames[:4] == b"\x89PNG"
    for refused in (
        lambda: client.search_for_studies(
            search_filters={"StudyInstanceUID": world["B"]["study_uid"]}
        ),
        lambda: client.search_for_studies(),
        lambda: client.search_for_series(study_instance_uid=world["shared_uid"]),
        lambda: client.retrieve_study_metadata(world["B"]["study_uid"]),
    ):
        with pytest.raises(HTTPError) as raised:
            refused()
        assert raised.value.response.status_code == 403


# -- the docker deployment's nginx, with its check, in front of a stand-in Orthanc --


class RecordingOrthanc:
    """Stands in for the docker image's Orthanc with the Authorization plugin,
    which cannot run here: it answers 200 to whatever nginx lets through, so
    that nginx's own check is seen alone (the plugin's answers are tested on
    replayed bodies, tests/test_webhook_contract.py, and on the route matrix,
    tests/test_decision_matrix.py). It keeps the headers it was sent."""

    def __init__(self):
        import http.server
        import threading

        seen = self.seen = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                seen[self.path] = dict(self.headers)
                body = b"reached Orthanc"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def docker_nginx(stack, tmp_path_factory):
    import subprocess
    from pathlib import Path

    from tests.helpers import free_port

    root = Path(__file__).resolve().parent.parent / "deploy" / "docker"
    tmp = tmp_path_factory.mktemp("docker-nginx")
    orthanc = RecordingOrthanc()
    port = free_port()
    locations = (root / "locations.inc").read_text()
    locations = locations.replace("http://orthanc:8042", f"http://127.0.0.1:{orthanc.port}")
    locations = locations.replace("http://authsvc:8000", stack.service_url)
    (tmp / "locations.inc").write_text(locations)
    conf = (root / "nginx.conf").read_text().replace("/tmp/", str(tmp) + "/")
    conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    conf = conf.replace("listen 8099;", f"listen 127.0.0.1:{free_port()};")
    conf = conf.replace("resolver 127.0.0.11 valid=10s ipv6=off;", "")
    conf = conf.replace("/etc/nginx/locations.inc", str(tmp / "locations.inc"))
    conf = conf.replace("/etc/nginx/site/*.conf", str(tmp / "site/*.conf"))
    conf = conf.replace("error_log /dev/stderr warn;", f"error_log {tmp}/error.log warn;")
    conf = conf.replace("access_log /dev/stdout noquery;", f"access_log {tmp}/access.log noquery;")
    (tmp / "nginx.conf").write_text(("user www-data;\n" if os_is_root() else "") + conf)
    proc = subprocess.Popen(
        [
            "nginx",
            "-c",
            str(tmp / "nginx.conf"),
            "-p",
            str(tmp),
            "-e",
            str(tmp / "error.log"),
            "-g",
            "daemon off;",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url), 10, what="docker nginx")
    yield url, orthanc
    proc.terminate()
    proc.wait(10)
    orthanc.close()


def os_is_root():
    import os

    return os.geteuid() == 0


def _answers(url):
    try:
        return requests.get(url + "/orthanc/system", timeout=1).status_code == 403
    except requests.RequestException:
        return False


@pytest.mark.parametrize("method,route,granted,who", list(matrix_cases()))
def test_route_matrix_docker_nginx(docker_nginx, world, method, route, granted, who):
    """The same matrix through the docker deployment's nginx: what its check
    lets through to Orthanc (and the plugin) for each principal. The reads of
    one resource by Orthanc ID (routes.hot_reads_regex), GET without a query,
    go to the plugin unchecked, with the principal's token and nothing else:
    the plugin decides them as the check would (tests/test_decision_matrix.py)."""
    import re

    from authsvc.decision.routes import hot_reads_regex

    url, orthanc = docker_nginx
    token = token_of(world["p"][who])
    cookies = {"authsvc_session": token} if token else {}
    path = "/orthanc" + route.format(**world)
    r = requests.request(
        method, url + path, data="{}", cookies=cookies, timeout=10, allow_redirects=False
    )
    if method == "GET" and "?" not in path and re.match(hot_reads_regex(), path):
        assert (r.status_code, r.text) == (200, "reached Orthanc"), (who, method, route)
        headers = {k.lower(): v for k, v in orthanc.seen[path[len("/orthanc") :]].items()}
        assert headers.get("token") == token and "authorization" not in headers, headers
    elif granted:
        assert (r.status_code, r.text) == (200, "reached Orthanc"), (who, method, route)
    else:
        assert r.status_code == 403 and "reached Orthanc" not in r.text, (who, method, route)


def test_a_study_the_service_never_recorded_closes_the_uid_it_shares(
    stack, orthanc, admin, world, tmp_path_factory
):
    """A study Orthanc holds but the service did not record (here: no
    PatientID, refused at ingest; likewise one not stable yet, or held in an
    identity conflict) with the UID of a patient's study: DICOMweb would
    answer for both, so nginx's check, which asks Orthanc, refuses."""
    tmp = tmp_path_factory.mktemp("stray")
    a = world["p"]["patient"]
    own = _send(
        stack,
        orthanc,
        tmp / "own",
        StudySpec(world["A1"]["pid"], "NÚÑEZ^JOSÉ", [SeriesSpec("CT", 1)], description="CONTROL 2"),
    )
    wait_for(lambda: recorded(admin, own["study"]), 30, what="study recorded")
    routes = [
        f"/orthanc/dicom-web/studies/{own['study_uid']}/series",
        f"/orthanc/dicom-web/studies?StudyInstanceUID={own['study_uid']}",
    ]
    for route in routes:
        assert a.get(route).status_code == 200, route
    stray = write_study(
        StudySpec(
            "", "STRAY^PERSON", [SeriesSpec("MR", 1)], tags={"StudyInstanceUID": own["study_uid"]}
        ),
        tmp / "stray",
    )
    assert storescu(stray.files, stack.site["dicom_port"]).returncode == 0
    wait_for(lambda: len(_ids(orthanc, own["study_uid"], "Study")) == 2, 10, what="stray stored")
    for route in routes:
        r = a.get(route)
        assert r.status_code == 403, (route, r.status_code)
        assert stray.series_uids[0] not in r.text
