"""Recording studies: idempotent, one login per patient, resources kept current."""

import pytest

from authsvc import ingest, passwords
from authsvc.models import IngestQueue, Patient, Resource, Study
from tests.helpers import fake_study


def test_first_study_creates_the_login_and_repeats_change_nothing(app):
    data = fake_study("P1", "1")
    pw = ingest.store_study(data["study_orthanc_id"], data)
    assert pw is not None
    patient = Patient.get(Patient.patient_id == "P1")
    assert passwords.verify(patient.password_hash, pw)
    assert ingest.store_study(data["study_orthanc_id"], data) is None
    assert Patient.select().count() == 1 and Study.select().count() == 1
    assert Patient.get(Patient.patient_id == "P1").password_hash == patient.password_hash


def test_returning_patient_keeps_the_login(app):
    first = fake_study("P1", "1")
    pw = ingest.store_study(first["study_orthanc_id"], first)
    second = fake_study("P1", "2")
    assert ingest.store_study(second["study_orthanc_id"], second) is None
    patient = Patient.get(Patient.patient_id == "P1")
    assert passwords.verify(patient.password_hash, pw)
    assert patient.studies.count() == 2


def test_restable_study_rewrites_its_resources(app):
    data = fake_study("P1", "1", series=1, per_series=2)
    ingest.store_study(data["study_orthanc_id"], data)
    more = fake_study("P1", "1", series=2, per_series=3)
    ingest.store_study(more["study_orthanc_id"], more)
    assert Resource.select().count() == 2 + 6


@pytest.mark.parametrize("pid", ["", "   "])
def test_no_patient_id_no_login(app, pid):
    data = fake_study("P1", "1")
    data["patient"]["PatientID"] = pid
    with pytest.raises(ingest.IngestRejected):
        ingest.store_study(data["study_orthanc_id"], data)
    assert Patient.select().count() == 0


def test_enqueue_accepts_only_orthanc_ids_and_is_idempotent(app):
    sid = fake_study()["study_orthanc_id"]
    ingest.enqueue(sid)
    ingest.enqueue(sid)
    assert IngestQueue.select().count() == 1
    for bad in ["", "../x", "1.2.3", "ABCDEF00-" + sid[9:], sid + "0", sid + "\n"]:
        with pytest.raises(ValueError):
            ingest.enqueue(bad)


def test_text_values_split_multivalued_and_skip_non_text():
    tags = {
        "0008,1060": "A^B\\C^D\\ ",
        "0008,0080": "H",
        "0008,0020": "20260101",
        "0020,000d": "1.2.3",
        "7fe0,0010": None,
        "0008,1032": [{"0008,0100": "X"}],
        "0009,0010": "PRIVATE CREATOR",
        "0008,1030": "x" * 2000,
    }
    assert ingest._text_values(tags) == {
        "0008,1060": {"A^B", "C^D"},
        "0008,0080": {"H"},
        "0009,0010": {"PRIVATE CREATOR"},
    }


class _ChangesOrthanc:
    """Orthanc's /changes and /studies/{id}, as much as follow_changes and
    check_pending read."""

    def __init__(self):
        self.changes, self.stable, self.gone = [], set(), set()

    def get(self, path, **params):
        from authsvc.orthanc import OrthancNotFound

        if path == "/changes":
            if params.get("last") == "":
                return {"Last": len(self.changes)}
            since = int(params["since"])
            return {"Changes": self.changes[since:], "Last": len(self.changes), "Done": True}
        sid = path.rsplit("/", 1)[1]
        if sid in self.gone:
            raise OrthancNotFound(path)
        return {"IsStable": sid in self.stable}


def test_a_new_study_stable_without_its_event_is_queued(app):
    """Orthanc restarted while the study was unstable calls it
    stable but never sends its StableStudy change."""
    a, b, c, d = (fake_study(f"P{n}", str(n))["study_orthanc_id"] for n in range(4))
    orthanc = _ChangesOrthanc()
    orthanc.changes = [{"ChangeType": "NewStudy", "ID": sid} for sid in (a, b, c, d)]
    orthanc.changes.append({"ChangeType": "StableStudy", "ID": d})
    ingest.follow_changes(orthanc)
    assert {r.orthanc_id for r in IngestQueue.select()} == {d}
    assert ingest.check_pending(orthanc) == 0  # none stable yet: all still pending
    assert ingest._pending() == {a, b, c}
    orthanc.stable = {a}  # "restarted": stable, with no event
    orthanc.gone = {c}  # deleted meanwhile
    assert ingest.check_pending(orthanc) == 1
    assert {r.orthanc_id for r in IngestQueue.select()} == {a, d}
    assert ingest._pending() == {b}
    orthanc.changes.append({"ChangeType": "StableStudy", "ID": b})
    ingest.follow_changes(orthanc)
    assert ingest._pending() == set()
