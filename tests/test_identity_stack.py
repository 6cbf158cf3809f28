"""Who a study belongs to, on the real path: DICOM sent by storescu to the
real Orthanc, ingest, and every request through nginx. Two PatientIDs that
differ only in inner spaces are two logins; each study shows its own
patient name."""

import uuid

import pydicom
import pytest

from conftest import Browser, wait_for
from dicom_samples import SeriesSpec, StudySpec, lookup, recorded, storescu, write_study


def send(stack, orthanc, tmp_path, spec, extra=None):
    written = write_study(spec, tmp_path / uuid.uuid4().hex[:8])
    if extra:
        for path in written.files:
            ds = pydicom.dcmread(path)
            extra(ds)
            ds.save_as(path, enforce_file_format=True)
    result = storescu(written.files, stack.site["dicom_port"])
    assert result.returncode == 0, result.stderr
    return lookup(orthanc, written.study_uid)


def one_series(n=1):
    return [SeriesSpec("CT", n, {})]


def patient_login(stack, admin, pid):
    r = admin.post(f"/api/patients/{pid}/credentials", json={})
    assert r.status_code == 200, (pid, r.text)
    b = Browser(stack.public_url)
    assert b.login(patient_id=pid, password=r.json()["password"]).status_code == 200
    return b


def studies_of(browser):
    return {s["orthanc_id"] for s in browser.get("/api/studies").json()["studies"]}


def test_patient_ids_differing_in_inner_spaces_are_two_logins(stack, orthanc, admin, tmp_path):
    tag = uuid.uuid4().hex[:4].upper()
    one, two = f"SP 77{tag}", f"SP  77{tag}"
    a = send(stack, orthanc, tmp_path, StudySpec(one, "ONE^PERSON", series=one_series()))
    b = send(stack, orthanc, tmp_path, StudySpec(two, "OTHER^PERSON", series=one_series()))
    for study in (a, b):
        wait_for(lambda: recorded(admin, study), 30, what="study recorded")
    assert recorded(admin, a)["patient_id"] == one
    assert recorded(admin, b)["patient_id"] == two
    first, second = patient_login(stack, admin, one), patient_login(stack, admin, two)
    assert studies_of(first) == {a} and studies_of(second) == {b}
    assert first.get(f"/orthanc/studies/{a}").status_code == 200
    assert first.get(f"/orthanc/studies/{b}").status_code == 403
    assert second.get(f"/orthanc/studies/{a}").status_code == 403
    assert second.get(f"/orthanc/studies/{b}").status_code == 200


@pytest.mark.parametrize("names", [["SEVEN^ONE", "SEVEN^ONE^^", "seven^one"]])
def test_each_study_shows_its_own_patient_name(stack, orthanc, admin, tmp_path, names):
    pid = f"NAMES{uuid.uuid4().hex[:4].upper()}"
    sent = [send(stack, orthanc, tmp_path, StudySpec(pid, name, series=one_series(),
                                                      description=f"S{n}"))
            for n, name in enumerate(names)]
    for study in sent:
        wait_for(lambda: recorded(admin, study), 30, what="study recorded")
    assert [recorded(admin, s)["patient_name"] for s in sent] == names
