"""The route matrix (tests/route_matrix.py) in-process: the one decision
function, reached through each adapter's own translation of its input, gives
what the table says, on a database of made-up studies with the same shape as
the real stack's world (tests/test_confinement.py runs the table there).

- nginx's check and the Lua filter: `routes.parse` of the request line (the
  filter's line carries the query nginx passes it);
- the Authorization plugin: its question about each resource the request
  names (`webhook._target`), at the resource's own level, and at the system
  level for the rest, without the query string, which the plugin does not
  send. The plugin must never grant what the table refuses; with
  `"CheckedLevel": "studies"` it cannot see a climb to /patient or a
  query, which is why nginx's check stands in front of it."""

import datetime

import pytest

from authsvc import ingest
from authsvc.decision import policy, routes
from authsvc.decision.principals import (
    PatientPrincipal,
    RulePrincipal,
    SharePrincipal,
    StaffPrincipal,
)
from authsvc.models import Patient, RuleLogin, RuleMatch, Share, StaffUser, Study
from authsvc.webhook import _question, _target
from tests.helpers import fake_study, fresh_database, service_app
from tests.route_matrix import matrix_cases


def _shaped(data):
    return {
        "study": data["study_orthanc_id"],
        "series": data["series"][0][0],
        "instance": data["instances"][0][0],
        "patient": data["patient_orthanc_id"],
        "pid": data["patient"]["PatientID"],
        "study_uid": data["tags"]["StudyInstanceUID"],
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One database for the whole table: its rows are only read."""
    folder = tmp_path_factory.mktemp("matrix")
    with fresh_database(folder) as url, service_app(folder, url):
        yield _build_world()


def _build_world():
    a1, a2, b = fake_study("PA", "1"), fake_study("PA", "2"), fake_study("PB", "3")
    b["tags"]["StudyInstanceUID"] = a1["tags"]["StudyInstanceUID"]  # a reused UID
    for data in (a1, a2, b):
        ingest.store_study(data["study_orthanc_id"], data)
    pa, pb = (Patient.get(Patient.patient_id == p) for p in ("PA", "PB"))
    s1 = Study.get(Study.orthanc_id == a1["study_orthanc_id"])
    login = RuleLogin.create(name="dr", password_hash="x")
    RuleMatch.create(login=login, study=s1)
    share = Share.create(
        secret_hash="h", patient=pa, study=s1, expires_at=datetime.datetime(2999, 1, 1)
    )
    staff = {
        role: StaffUser.create(username=role, role=role, password_hash="x")
        for role in ("admin", "radiologist")
    }
    principals = {
        "patient": PatientPrincipal(1, patient=pa),
        "other": PatientPrincipal(2, patient=pb),
        "rule": RulePrincipal(3, rule_login=login),
        "share": SharePrincipal(4, share=share),
        "radiologist": StaffPrincipal(5, staff=staff["radiologist"]),
        "admin": StaffPrincipal(6, staff=staff["admin"]),
        "none": None,
    }
    return {
        "A1": _shaped(a1),
        "A2": _shaped(a2),
        "B": _shaped(b),
        "shared_uid": a1["tags"]["StudyInstanceUID"],
        "p": principals,
    }


def plugin_questions(method, uri):
    """What the plugin asks about a request: the resource it names, at its own
    level, or the system level with the path alone."""
    path = uri.partition("?")[0]
    target = routes.parse(method, path)
    if (
        target.kind in (routes.Kind.RESOURCE, routes.Kind.PATIENT)
        and target.level
        and not path.endswith("/patient")
    ):
        level = {
            "patients": "patient",
            "studies": "study",
            "series": "series",
            "instances": "instance",
        }[target.level]
        return [{"level": level, "method": method.lower(), "orthanc-id": target.orthanc_id}]
    return [{"level": "system", "method": method.lower(), "uri": path}]


@pytest.mark.parametrize("method,route,granted,who", list(matrix_cases()))
def test_every_adapter_decides_as_the_table(world, method, route, granted, who):
    principal = world["p"][who]
    uri = route.format(**world)
    assert policy.decide(principal, routes.parse(method, uri)).granted is granted
    for body in plugin_questions(method, uri):
        plugin = policy.decide(principal, _target(_question(body))).granted
        if not granted and "?" not in uri:
            # (A query the plugin is not sent is nginx's check's alone:
            # test_confinement.py's docker nginx matrix.)
            assert not plugin, (who, method, uri, body)
        elif (
            "?" not in uri
            and not uri.endswith("/patient")
            and uri.startswith(("/studies/", "/series/", "/instances/", "/patients/"))
        ):
            assert plugin, (who, method, uri, body)
