"""DICOM as modalities really send it, through the real Orthanc: odd
PatientIDs, no PatientName, odd character sets, a huge private tag. Each
study is either recorded with a working login, or recorded nowhere with the
reason shown to staff; the service never stops ingesting."""

import uuid

import pytest

from tests.dicom_samples import SeriesSpec, StudySpec, recorded, send
from tests.helpers import Browser, wait_for

pytestmark = pytest.mark.stack


def problems(admin):
    return {p["orthanc_id"]: p for p in admin.get("/api/ingest/problems").json()["problems"]}


def logs_in(stack, admin, pid):
    r = admin.post(f"/api/patients/{pid}/credentials", json={})
    assert r.status_code == 200, (pid, r.text)
    b = Browser(stack.public_url)
    return b.login(patient_id=pid, password=r.json()["password"]).status_code == 200


def one_series():
    return [SeriesSpec("CT", 1, {})]


@pytest.mark.parametrize(
    "pid,charset,name",
    [
        ("X" * 64, "ISO_IR 192", "LONG^ID"),
        ("HC 0042 7", "ISO_IR 192", "SPACES^IN ID"),
        ("ÑÚÑEZ-0042", "ISO_IR 192", "NÚÑEZ^JOSÉ"),
        ("PÉREZ-77", "ISO_IR 100", "PÉREZ^MARÍA"),
        ("NONAME-1", "ISO_IR 192", None),
        ("CYR-1", "ISO_IR 144", "Иванов^Иван"),
    ],
)
def test_odd_but_usable_patient_ids_get_a_working_login(
    stack, orthanc, admin, tmp_path, pid, charset, name
):
    pid = pid if len(pid) == 64 else f"{pid}-{uuid.uuid4().hex[:4]}"[:64]
    spec = StudySpec(pid, name or "", charset=charset, series=one_series())

    def drop_name(ds):
        if name is None:
            del ds.PatientName

    study = send(stack, orthanc, tmp_path, spec, drop_name)
    row = wait_for(lambda: recorded(admin, study), 30, what="odd study recorded")
    assert row["patient_id"] == pid.strip()
    assert row["patient_has_login"]
    if name:
        assert row["patient_name"] == name
    assert logs_in(stack, admin, pid)


@pytest.mark.parametrize(
    "pid,reason",
    [
        ("", "no PatientID"),
        ("A\\B", "several values"),
    ],
)
def test_unusable_patient_ids_get_no_login_and_staff_see_why(
    stack, orthanc, admin, tmp_path, pid, reason
):
    spec = StudySpec(
        "placeholder", "NO^LOGIN", series=one_series(), description=f"ODD {uuid.uuid4().hex[:6]}"
    )

    def set_pid(ds):
        ds.PatientID = pid

    study = send(stack, orthanc, tmp_path, spec, set_pid)
    problem = wait_for(lambda: problems(admin).get(study), 30, what="problem reported")
    assert reason in problem["error"]
    assert problem["gave_up"] is True
    assert recorded(admin, study) is None


def test_huge_private_tag_does_not_stop_ingest(stack, orthanc, admin, tmp_path):
    pid = f"HUGE-{uuid.uuid4().hex[:6]}"

    def add_private(ds):
        block = ds.private_block(0x0019, "ODD MODALITY", create=True)
        block.add_new(0x10, "UT", "x" * 500_000)
        block.add_new(0x11, "LO", "short private value")

    study = send(
        stack, orthanc, tmp_path, StudySpec(pid, "BIG^TAG", series=one_series()), add_private
    )
    row = wait_for(lambda: recorded(admin, study), 30, what="study with a huge tag recorded")
    assert row["patient_has_login"]
    # Ingest went on: a normal study sent after it is recorded too.
    later = send(
        stack,
        orthanc,
        tmp_path,
        StudySpec(f"AFTER-{uuid.uuid4().hex[:6]}", "A^B", series=one_series()),
    )
    wait_for(lambda: recorded(admin, later), 30, what="the next study")
