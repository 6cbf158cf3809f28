"""Who a study belongs to, on the real path: DICOM sent by storescu to the
real Orthanc, ingest, and every request through nginx. Two PatientIDs that
differ only in inner spaces are two logins; a PatientID whose characters
Orthanc dropped (a character set it does not know), or a study with another
birth date under the same PatientID, is attached to no login until an admin
resolves it."""

import uuid

import pytest

from tests.dicom_samples import StudySpec, conflict_of, one_series, raw_patient_id, recorded, send
from tests.helpers import Browser, wait_for

pytestmark = pytest.mark.stack


def patient_login(stack, admin, pid):
    r = admin.post(f"/api/patients/{pid}/credentials", json={})
    assert r.status_code == 200, (pid, r.text)
    b = Browser(stack.public_url)
    assert b.login(patient_id=pid, password=r.json()["password"]).status_code == 200
    return b


def studies_of(browser):
    return {s["orthanc_id"] for s in browser.get("/api/studies").json()["studies"]}


def recorded_or_conflict(admin, study):
    return recorded(admin, study) or conflict_of(admin, study)


def test_patient_ids_differing_in_inner_spaces_are_two_logins(stack, orthanc, admin, tmp_path):
    tag = uuid.uuid4().hex[:4].upper()
    one, two = f"SP 77{tag}", f"SP  77{tag}"
    a = send(stack, orthanc, tmp_path, StudySpec(one, "ONE^PERSON", series=one_series()))
    b = send(stack, orthanc, tmp_path, StudySpec(two, "OTHER^PERSON", series=one_series()))
    for study in (a, b):
        wait_for(lambda study=study: recorded(admin, study), 30, what="study recorded")
    assert recorded(admin, a)["patient_id"] == one
    assert recorded(admin, b)["patient_id"] == two
    first, second = patient_login(stack, admin, one), patient_login(stack, admin, two)
    assert studies_of(first) == {a} and studies_of(second) == {b}
    assert first.get(f"/orthanc/studies/{a}").status_code == 200
    assert first.get(f"/orthanc/studies/{b}").status_code == 403
    assert second.get(f"/orthanc/studies/{a}").status_code == 403
    assert second.get(f"/orthanc/studies/{b}").status_code == 200


def test_patient_id_stripped_by_orthanc_is_attached_to_no_login(stack, orthanc, admin, tmp_path):
    pid = f"COLLIDE{uuid.uuid4().hex[:4].upper()}"
    mine = send(stack, orthanc, tmp_path, StudySpec(pid, "REAL^OWNER", series=one_series()))
    wait_for(lambda: recorded(admin, mine), 30, what="the owner's study")
    # Another person: PatientID pid + "é" in a character set Orthanc does not
    # know. Orthanc drops the byte it cannot decode and files it under pid.
    stranger = send(
        stack,
        orthanc,
        tmp_path,
        StudySpec(pid, "REAL^OWNER", series=one_series(2)),
        raw_patient_id(pid.encode() + b"\xe9", "ISO_IR 999"),
    )
    info = orthanc.get(f"{orthanc.base}/studies/{stranger}").json()
    assert info["PatientMainDicomTags"]["PatientID"] == pid  # what Orthanc made of it
    owner = patient_login(stack, admin, pid)
    wait_for(lambda: recorded_or_conflict(admin, stranger), 30, what="the stranger's study handled")
    assert studies_of(owner) == {mine}
    assert owner.get(f"/orthanc/studies/{stranger}").status_code == 403
    # Orthanc files both under one Orthanc patient: its patient level would
    # hand the owner the stranger's study, by every route that names it.
    patient_level = [
        f"/orthanc/patients/{info['ParentPatient']}",
        f"/orthanc/patients/{info['ParentPatient']}/archive",
        f"/orthanc/patients/{info['ParentPatient']}/studies",
        f"/orthanc/studies/{mine}/patient",
        f"/orthanc/dicom-web/studies?PatientID={pid}",
        f"/orthanc/tools/create-archive?resources={info['ParentPatient']}",
    ]
    for route in patient_level:
        assert owner.get(route).status_code == 403, route
    problem = conflict_of(admin, stranger)
    assert problem is not None, "staff see the conflict"
    assert problem["conflict"]["code"] == "charset_unknown"
    assert problem["conflict"]["login"] == pid
    assert problem["conflict"]["patient_orthanc_id"] == info["ParentPatient"]
    # Resolved as a separate login: that login sees the stranger's study
    # through nginx, the owner still does not.
    r = admin.post(f"/api/ingest/conflicts/{stranger}/resolve", json={"action": "separate"})
    assert r.status_code == 200, r.text
    separate = Browser(stack.public_url)
    assert (
        separate.login(patient_id=r.json()["patient_id"], password=r.json()["password"]).status_code
        == 200
    )
    assert studies_of(separate) == {stranger}
    wait_for(
        lambda: separate.get(f"/orthanc/studies/{stranger}").status_code == 200,
        10,
        what="the separate login opens its study",
    )
    assert separate.get(f"/orthanc/studies/{mine}").status_code == 403
    assert owner.get(f"/orthanc/studies/{stranger}").status_code == 403
    for route in patient_level:  # still one Orthanc patient holding two people
        assert owner.get(route).status_code == 403, route
        assert separate.get(route).status_code == 403, route


def test_other_birth_date_under_the_same_patient_id_is_a_conflict(stack, orthanc, admin, tmp_path):
    pid = f"BIRTH{uuid.uuid4().hex[:4].upper()}"
    mine = send(stack, orthanc, tmp_path, StudySpec(pid, "SAME^NAME", series=one_series()))
    wait_for(lambda: recorded(admin, mine), 30, what="the first study")

    def born_later(ds):
        ds.PatientBirthDate = "20010203"

    other = send(
        stack,
        orthanc,
        tmp_path,
        StudySpec(pid, "SAME^NAME", series=one_series(), description="OTHER"),
        born_later,
    )
    owner = patient_login(stack, admin, pid)
    wait_for(lambda: recorded_or_conflict(admin, other), 30, what="the second study handled")
    assert studies_of(owner) == {mine}
    assert owner.get(f"/orthanc/studies/{other}").status_code == 403
    assert conflict_of(admin, other)["conflict"]["code"] == "birth_date"
    # Attached by an admin (the same person after all): the owner sees both.
    r = admin.post(f"/api/ingest/conflicts/{other}/resolve", json={"action": "attach"})
    assert r.status_code == 200, r.text
    assert studies_of(owner) == {mine, other}
    wait_for(
        lambda: owner.get(f"/orthanc/studies/{other}").status_code == 200,
        10,
        what="the attached study opens",
    )


@pytest.mark.parametrize("names", [["SEVEN^ONE", "SEVEN^ONE^^", "seven^one"]])
def test_each_study_shows_its_own_patient_name(stack, orthanc, admin, tmp_path, names):
    pid = f"NAMES{uuid.uuid4().hex[:4].upper()}"
    sent = [
        send(
            stack, orthanc, tmp_path, StudySpec(pid, name, series=one_series(), description=f"S{n}")
        )
        for n, name in enumerate(names)
    ]
    for study in sent:
        wait_for(lambda study=study: recorded(admin, study), 30, what="study recorded")
    assert [recorded(admin, s)["patient_name"] for s in sent] == names
