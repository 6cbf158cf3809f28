"""Recording stable studies: what Orthanc says about them, and the patient's login.

Orthanc's Lua tells the service a study is stable (`notify`); the study is put
in a queue table at once and recorded by a background thread, because the Lua
hook holds Orthanc's Lua lock while it waits for the answer, and recording
reads Orthanc's REST API, whose request filter needs that same lock. The
thread also follows Orthanc's /changes, so studies that became stable while
the service was down are recorded when it returns.
"""

import fcntl
import json
import logging
import os
import threading
from contextlib import contextmanager

from peewee import IntegrityError

from . import passwords
from .text import fold
from .db import database
from .models import (IngestQueue, Patient, Resource, Study, get_value,
                     set_value, utcnow)
from .orthanc import ORTHANC_ID, OrthancError, OrthancNotFound

log = logging.getLogger(__name__)

ACCESS_TAGS = ("InstitutionName", "ReferringPhysicianName",
               "ResponsibleOrganization", "PerformingPhysicianName",
               "NameOfPhysiciansReadingStudy")
MAX_ATTEMPTS = 5
CHANGES_KEY = "changes_last_seq"


class IngestRejected(ValueError):
    """The study cannot get a login (e.g. no usable PatientID); kept for staff."""


def enqueue(orthanc_id):
    if not isinstance(orthanc_id, str) or not ORTHANC_ID.fullmatch(orthanc_id):
        raise ValueError("not an Orthanc study ID")
    (IngestQueue.insert(orthanc_id=orthanc_id)
     .on_conflict(conflict_target=[IngestQueue.orthanc_id],
                  update={IngestQueue.attempts: 0, IngestQueue.last_error: ""})
     .execute())


def _values(tags, keyword):
    """Every value of a tag in Orthanc's simplified JSON, multi-values split."""
    value = tags.get(keyword)
    if not isinstance(value, str):
        return []
    return [v.strip() for v in value.split("\\") if v.strip()]


def read_study(orthanc, orthanc_id):
    """Everything the service keeps about a study, read from Orthanc."""
    study = orthanc.get(f"/studies/{orthanc_id}")
    series = orthanc.get(f"/studies/{orthanc_id}/series")
    instances = orthanc.get(f"/studies/{orthanc_id}/instances")
    access = {k: set(_values(study.get("MainDicomTags", {}), k)) for k in ACCESS_TAGS}
    # Performing and reading physicians live at series/instance level and differ
    # between series: read the full tags of the first instance of every series.
    first_of_series = {}
    for inst in instances:
        first_of_series.setdefault(inst["ParentSeries"], inst["ID"])
    for instance_id in first_of_series.values():
        tags = orthanc.get(f"/instances/{instance_id}/simplified-tags")
        for keyword in ACCESS_TAGS:
            access[keyword].update(_values(tags, keyword))
    modalities = sorted({s.get("MainDicomTags", {}).get("Modality", "") for s in series} - {""})
    return {
        "patient": study.get("PatientMainDicomTags", {}),
        "patient_orthanc_id": study["ParentPatient"],
        "tags": study.get("MainDicomTags", {}),
        "modalities": modalities,
        "access": {k: sorted(v) for k, v in access.items()},
        "series": [(s["ID"], s.get("MainDicomTags", {}).get("SeriesInstanceUID", ""))
                   for s in series],
        "instances": [(i["ID"], i.get("MainDicomTags", {}).get("SOPInstanceUID", ""))
                      for i in instances],
    }


def store_study(orthanc_id, data):
    """Record (or update) one study; create the patient's login the first time.
    Returns the new password when a login was created, else None."""
    patient_id = (data["patient"].get("PatientID") or "").strip()
    if not patient_id:
        raise IngestRejected("the study has no PatientID: no login can be made")
    tags = data["tags"]
    new_password = None
    with database.atomic():
        patient = Patient.get_or_none(Patient.patient_id == patient_id)
        if patient is None:
            new_password = passwords.generate()
            patient = Patient.create(
                patient_id=patient_id, orthanc_id=data["patient_orthanc_id"],
                name=data["patient"].get("PatientName", ""),
                search_name=fold(data["patient"].get("PatientName", "")),
                birth_date=data["patient"].get("PatientBirthDate", ""),
                password_hash=passwords.hash_password(new_password),
                password_set_at=utcnow())
        fields = dict(study_uid=tags.get("StudyInstanceUID", ""), patient=patient,
                      study_date=tags.get("StudyDate", ""),
                      description=tags.get("StudyDescription", ""),
                      modalities="\\".join(data["modalities"]),
                      access_tags=json.dumps(data["access"], ensure_ascii=False),
                      updated_at=utcnow())
        study = Study.get_or_none(Study.orthanc_id == orthanc_id)
        if study is None:
            study = Study.create(orthanc_id=orthanc_id, **fields)
        else:
            Study.update(**fields).where(Study.id == study.id).execute()
        # A study becomes stable again when late instances arrive: the index of
        # its resources is rewritten whole.
        Resource.delete().where(Resource.study == study).execute()
        rows = ([dict(orthanc_id=i, uid=u, level="series", study=study) for i, u in data["series"]]
                + [dict(orthanc_id=i, uid=u, level="instance", study=study) for i, u in data["instances"]])
        for start in range(0, len(rows), 200):
            Resource.insert_many(rows[start:start + 200]).execute()
    return new_password


def record_study(orthanc, orthanc_id):
    return store_study(orthanc_id, read_study(orthanc, orthanc_id))


def process_queue(orthanc):
    """Record every queued study. Stops at the first Orthanc outage (the rest
    stays queued for the next pass). Returns how many were recorded."""
    recorded = 0
    pending = (IngestQueue.select().where(IngestQueue.attempts < MAX_ATTEMPTS)
               .order_by(IngestQueue.queued_at))
    for row in list(pending):
        try:
            for _ in range(2):
                try:
                    created = record_study(orthanc, row.orthanc_id)
                    break
                except IntegrityError:
                    # Another worker recorded the same patient or study at the
                    # same moment: the second try sees its rows.
                    continue
            else:
                raise IngestRejected("could not record the study (database conflict)")
        except OrthancNotFound:
            log.info("study %s is no longer in Orthanc; dropped from the queue", row.orthanc_id)
            row.delete_instance()
            continue
        except OrthancError:
            log.warning("Orthanc unavailable while recording %s; will retry", row.orthanc_id)
            break
        except IngestRejected as exc:
            IngestQueue.update(attempts=MAX_ATTEMPTS, last_error=str(exc)).where(
                IngestQueue.id == row.id).execute()
            log.warning("study %s not recorded: %s", row.orthanc_id, exc)
            continue
        except Exception:
            log.exception("unexpected error recording study %s", row.orthanc_id)
            IngestQueue.update(attempts=IngestQueue.attempts + 1,
                               last_error="internal error (see the service log)").where(
                IngestQueue.id == row.id).execute()
            continue
        row.delete_instance()
        recorded += 1
        log.info("study %s recorded%s", row.orthanc_id,
                 "; new patient login created" if created else "")
    return recorded


def follow_changes(orthanc):
    """Queue every StableStudy change after the last sequence read."""
    since = int(get_value(CHANGES_KEY, "0"))
    newest = orthanc.get("/changes", last="").get("Last", 0)
    if newest < since:
        # Orthanc's database was replaced (restore, reinstall): read it all again.
        log.warning("Orthanc's change log restarted (%s < %s); reading it from the start",
                    newest, since)
        since = 0
    while True:
        page = orthanc.get("/changes", since=since, limit=500)
        with database.atomic():
            for change in page.get("Changes", []):
                if change.get("ChangeType") == "StableStudy":
                    enqueue(change["ID"])
            since = max(since, int(page.get("Last", since)))
            set_value(CHANGES_KEY, since)
        if page.get("Done", True):
            return since


@contextmanager
def _exclusive(lock_path):
    """One ingest pass at a time across all gunicorn workers."""
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


class IngestWorker:
    """Background thread of a service process: a pass on every notification
    and every CHANGES_POLL_SECONDS."""

    def __init__(self, orthanc, lock_path, poll_seconds):
        self.orthanc = orthanc
        self.lock_path = lock_path
        self.poll_seconds = poll_seconds
        self.wake = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None:
            os.makedirs(os.path.dirname(self.lock_path) or ".", exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
            self._thread.start()

    def run_once(self):
        with _exclusive(self.lock_path), database.connection_context():
            process_queue(self.orthanc)
            try:
                follow_changes(self.orthanc)
            except OrthancError as exc:
                log.warning("could not read Orthanc's changes: %s", exc)
            process_queue(self.orthanc)

    def _run(self):
        while True:
            try:
                self.run_once()
            except Exception:
                log.exception("ingest pass failed; retrying at the next poll")
            self.wake.wait(self.poll_seconds)
            self.wake.clear()
