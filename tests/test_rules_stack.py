"""Tag rules and shares on the real stack: studies written with pydicom in
ISO_IR 192 and ISO_IR 100 with Spanish names, several series with different
performing physicians, multi-valued reading physicians and empty tags, sent
with storescu; every rule login tried on every study through the API and
through Orthanc (study, instance file, DICOMweb)."""

import json
import re
import time
import uuid

import pytest

from authsvc.cli import set_rule_password
from tests.dicom_samples import SeriesSpec, StudySpec, lookup, recorded, storescu, write_study
from tests.helpers import DECISION_CACHE_SECONDS, Browser, stack_sql, wait_for

pytestmark = pytest.mark.stack

READERS = "NameOfPhysiciansReadingStudy"
EMPTY = {
    "ReferringPhysicianName": "",
    "InstitutionName": "",
    "ResponsibleOrganization": "",
    "PerformingPhysicianName": "",
    READERS: "",
}


def specs(suffix):
    return {
        "S1": StudySpec(
            f"PR1-{suffix}",
            "NÚÑEZ^JOSÉ",
            charset="ISO_IR 192",
            tags={
                "ReferringPhysicianName": "GÓMEZ^MARÍA",
                "InstitutionName": "Hospital Universitario",
                READERS: ["RUIZ^ANA", "GÓMEZ^MARÍA^ELENA"],
                "ResponsibleOrganization": "",
            },
            series=[
                SeriesSpec("CT", 1, {"PerformingPhysicianName": "NÚÑEZ^JOSÉ"}),
                SeriesSpec("MR", 1, {"PerformingPhysicianName": "PEREZ^JUAN"}),
            ],
        ),
        "S2": StudySpec(
            f"PR2-{suffix}",
            "PEÑA^ÁNGELA",
            charset="ISO_IR 100",
            tags={
                "ReferringPhysicianName": "NUNEZ^JOSE",
                "InstitutionName": "CLÍNICA SAN JOSÉ",
                "ResponsibleOrganization": "FUNDACIÓN SALUD",
                READERS: "",
            },
            series=[SeriesSpec("CT", 1, {"PerformingPhysicianName": "PEREZ^JUANA"})],
        ),
        # The same patient as S1, with every access tag empty.
        "S3": StudySpec(
            f"PR1-{suffix}",
            "NÚÑEZ^JOSÉ",
            charset="ISO_IR 192",
            tags=dict(EMPTY),
            description="CONTROL",
            series=[SeriesSpec("CT", 1, {})],
        ),
        "S4": StudySpec(
            f"PR4-{suffix}",
            "MUÑOZ^INÉS",
            charset="ISO_IR 100",
            tags={
                "ReferringPhysicianName": "Perez Juan",
                "InstitutionName": "",
                READERS: "RUIZ^ANA",
                "ResponsibleOrganization": "",
            },
            series=[SeriesSpec("MR", 1, {"PerformingPhysicianName": ""})],
        ),
    }


LOGINS = [
    ("dra-gomez", [("ReferringPhysicianName", "gomez^maria"), ("(0008,1060)", "GOMEZ^MARIA*")]),
    (
        "dr-nunez",
        [("PerformingPhysicianName", "Nunez^Jose"), ("ReferringPhysicianName", "NÚÑEZ^JOSÉ")],
    ),
    (
        "dr-perez",
        [("PerformingPhysicianName", "PEREZ^JUAN"), ("ReferringPhysicianName", "PEREZ^JUAN")],
    ),
    ("dra-ruiz", [(READERS, "RUIZ^ANA")]),
    ("clinica", [("InstitutionName", "clinica san jose")]),
    ("fundacion", [("ResponsibleOrganization", "Fundacion Salud")]),
    ("hu", [("InstitutionName", "HOSPITAL UNIV*")]),
]
EXPECTED = {
    "dra-gomez": {"S1"},
    "dr-nunez": {"S1", "S2"},
    "dr-perez": {"S1", "S4"},
    "dra-ruiz": {"S1", "S4"},
    "clinica": {"S2"},
    "fundacion": {"S2"},
    "hu": {"S1"},
}


def write_rules(stack, logins):
    path = stack.data_dir / "rules.json"
    entries = [
        {"login": name, "rules": [{"tag": t, "value": v} for t, v in rules]}
        for name, rules in logins
    ]
    path.write_text(
        "// written by the test\n" + json.dumps({"logins": entries}, ensure_ascii=False)
    )
    return str(path)


@pytest.fixture(scope="module")
def rules_world(stack, orthanc, admin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rules")
    studies = {}
    for key, spec in specs(uuid.uuid4().hex[:6]).items():
        written = write_study(spec, tmp / key)
        result = storescu(written.files, stack.site["dicom_port"])
        assert result.returncode == 0, result.stderr
        study = lookup(orthanc, written.study_uid)
        studies[key] = {
            "study": study,
            "instance": lookup(orthanc, written.sop_uids[0]),
            "study_uid": written.study_uid,
            "pid": spec.patient_id,
            "patient": orthanc.get(f"{orthanc.base}/studies/{study}").json()["ParentPatient"],
        }
    for s in studies.values():
        wait_for(lambda s=s: recorded(admin, s["study"]), 30, what="study recorded")
    rules_path = write_rules(stack, LOGINS)
    passwords = {
        name: set_rule_password(str(stack.data_dir / "rule-passwords.json"), rules_path, name)
        for name, _ in LOGINS
    }
    return {"studies": studies, "passwords": passwords}


def rule_browser(stack, world, name):
    b = Browser(stack.public_url)
    r = b.login(login=name, password=world["passwords"][name])
    assert r.status_code == 200, (name, r.text)
    return b


def orthanc_routes(s):
    return [
        f"/orthanc/studies/{s['study']}",
        f"/orthanc/instances/{s['instance']}/file",
        f"/orthanc/dicom-web/studies/{s['study_uid']}/metadata",
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rule_login_matrix(stack, rules_world, name):
    b = rule_browser(stack, rules_world, name)
    studies = rules_world["studies"]
    listed = {s["orthanc_id"] for s in b.get("/api/studies").json()["studies"]}
    assert {k for k, s in studies.items() if s["study"] in listed} == EXPECTED[name]
    for key, s in studies.items():
        expected = 200 if key in EXPECTED[name] else 403
        for route in orthanc_routes(s):
            assert b.get(route).status_code == expected, (name, key, route)
        # The patient level would list the patient's other studies: never.
        assert b.get(f"/orthanc/patients/{s['patient']}").status_code == 403
    assert b.get("/orthanc/studies").status_code == 403
    assert b.request("DELETE", f"/orthanc/studies/{studies['S1']['study']}").status_code == 403


def test_staff_see_the_decoded_tags_and_matching_rules(rules_world, admin):
    s1 = recorded(admin, rules_world["studies"]["S1"]["study"])
    assert s1["access_tags"][READERS] == ["GÓMEZ^MARÍA^ELENA", "RUIZ^ANA"]
    assert s1["access_tags"]["PerformingPhysicianName"] == ["NÚÑEZ^JOSÉ", "PEREZ^JUAN"]
    assert s1["rule_logins"] == sorted(k for k, v in EXPECTED.items() if "S1" in v)
    s2 = recorded(admin, rules_world["studies"]["S2"]["study"])
    assert s2["access_tags"]["InstitutionName"] == ["CLÍNICA SAN JOSÉ"]  # from ISO_IR 100
    assert recorded(admin, rules_world["studies"]["S3"]["study"])["rule_logins"] == []


def test_rule_removed_closes_access_within_cache_validity(stack, rules_world):
    b = rule_browser(stack, rules_world, "hu")
    route = orthanc_routes(rules_world["studies"]["S1"])[1]
    assert b.get(route).status_code == 200
    write_rules(stack, [entry for entry in LOGINS if entry[0] != "hu"])
    try:
        assert b.get("/api/studies").status_code == 401
        time.sleep(DECISION_CACHE_SECONDS + 1.1)
        assert b.get(route).status_code == 403
    finally:
        write_rules(stack, LOGINS)


def patient_browser(stack, admin, pid):
    password = admin.post(f"/api/patients/{pid}/credentials", json={}).json()["password"]
    b = Browser(stack.public_url)
    assert b.login(patient_id=pid, password=password).status_code == 200
    return b


def test_share_used_from_a_fresh_session_then_revoked(stack, admin, rules_world):
    s1, s3 = rules_world["studies"]["S1"], rules_world["studies"]["S3"]
    patient = patient_browser(stack, admin, s1["pid"])
    share = patient.post("/api/shares", json={"study": s1["study"]}).json()
    holder = Browser(stack.public_url)
    assert holder.login(share=share["url"].split("#share=")[1]).status_code == 200
    for route in orthanc_routes(s1):
        assert holder.get(route).status_code == 200, route
    for route in orthanc_routes(s3):  # the same patient's other study
        assert holder.get(route).status_code == 403, route
    assert holder.get(f"/orthanc/patients/{s1['patient']}").status_code == 403
    assert patient.post(f"/api/shares/{share['id']}/revoke", json={}).status_code == 200
    assert holder.get("/api/studies").status_code == 401
    time.sleep(DECISION_CACHE_SECONDS + 1.1)
    for route in orthanc_routes(s1):
        assert holder.get(route).status_code == 403, route


def test_expired_share_is_refused(stack, admin, rules_world):
    s2 = rules_world["studies"]["S2"]
    patient = patient_browser(stack, admin, s2["pid"])
    share = patient.post("/api/shares", json={"days": 1}).json()
    holder = Browser(stack.public_url)
    assert holder.login(share=share["url"].split("#share=")[1]).status_code == 200
    assert holder.get(orthanc_routes(s2)[0]).status_code == 200
    # A day passes: moved back in the service's own database.
    stack_sql(
        stack, "UPDATE share SET expires_at = '2000-01-01 00:00:00' WHERE id = {p}", share["id"]
    )
    time.sleep(DECISION_CACHE_SECONDS + 1.1)
    for route in orthanc_routes(s2):
        assert holder.get(route).status_code == 403, route
    assert holder.get("/api/studies").status_code == 401


def test_each_shipped_example_enabled_alone_logs_in_on_the_real_stack(
    stack, orthanc, admin, tmp_path
):
    """The rules file as `make run` writes it (deploy/rules.example.json),
    one example switched on as the file says ("enabled": false -> true), a
    password made as `make rule-password` does: the physician or institution
    logs in through nginx and sees the study its tag names, in the API and
    through Orthanc. Another study (no such values) stays closed."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    shipped = (root / "deploy" / "rules.example.json").read_text(encoding="utf-8")
    suffix = uuid.uuid4().hex[:6]
    named = StudySpec(
        f"EXS-{suffix}",
        "LÓPEZ^CARMEN",
        charset="ISO_IR 192",
        tags={
            "InstitutionName": "HOSPITAL UNIVERSITARIO DE CARACAS",
            "ReferringPhysicianName": "GÓMEZ^MARÍA ELENA",
            "ResponsibleOrganization": "FUNDACIÓN SALUD",
        },
        series=[SeriesSpec("CT", 1, {"PerformingPhysicianName": ""})],
    )
    other = StudySpec(
        f"EXO-{suffix}",
        "LÓPEZ^CARMEN",
        charset="ISO_IR 192",
        tags=dict(EMPTY),
        series=[SeriesSpec("CT", 1, {})],
    )
    ids = {}
    for key, spec in (("named", named), ("other", other)):
        written = write_study(spec, tmp_path / key)
        assert storescu(written.files, stack.site["dicom_port"]).returncode == 0
        ids[key] = lookup(orthanc, written.study_uid)
        wait_for(lambda key=key: recorded(admin, ids[key]), 30, what="study recorded")
    path = stack.data_dir / "rules.json"
    before = path.read_text(encoding="utf-8")
    lines = shipped.splitlines()
    switches = [
        n
        for n, line in enumerate(lines)
        if '"enabled": false' in line and not line.lstrip().startswith("//")
    ]
    assert len(switches) == 3
    try:
        for n in switches:
            edited = list(lines)
            edited[n] = lines[n].replace('"enabled": false', '"enabled": true')
            path.write_text("\n".join(edited) + "\n", encoding="utf-8")
            login = re.search(r'"login": "([^"]+)"', lines[n]).group(1)
            password = set_rule_password(
                str(stack.data_dir / "rule-passwords.json"), str(path), login
            )
            b = Browser(stack.public_url)
            r = b.login(login=login, password=password)
            assert r.status_code == 200, (login, r.text)
            listed = {s["orthanc_id"] for s in b.get("/api/studies").json()["studies"]}
            assert ids["named"] in listed and ids["other"] not in listed, login
            assert b.get(f"/orthanc/studies/{ids['named']}").status_code == 200
            assert b.get(f"/orthanc/studies/{ids['other']}").status_code == 403
    finally:
        path.write_text(before, encoding="utf-8")
