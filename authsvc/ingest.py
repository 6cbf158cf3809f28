"""Recording stable studies: what Orthanc says about them, and the patient's login.

Orthanc's Lua tells the service a study is stable (`notify`); the study is put
in a queue table at once and recorded by a background thread, because the Lua
hook holds Orthanc's Lua lock while it waits for the answer, and recording
reads Orthanc's REST API, whose request filter needs that same lock. The
thread also follows Orthanc's /changes, so studies that became stable while
the service was down are recorded when it returns.
"""

import json
import logging
import os
import re
import threading
import time

from peewee import IntegrityError, InterfaceError, OperationalError

from . import audit, conflicts, display, matching, passwords, rules
from .db import database, write_transaction
from .locks import exclusive
from .models import (
    IdentityConflict,
    IngestQueue,
    Patient,
    Resource,
    Study,
    StudyTag,
    get_value,
    set_value,
    utcnow,
)
from .orthanc import ORTHANC_ID, OrthancError, OrthancNotFound
from .text import fold

log = logging.getLogger(__name__)

ACCESS_TAGS = (
    "InstitutionName",
    "ReferringPhysicianName",
    "ResponsibleOrganization",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
)
MAX_ATTEMPTS = 5
MAX_VALUE_LENGTH = 1024
CHANGES_KEY = "changes_last_seq"


class IngestRejected(ValueError):
    """The study cannot get a login (e.g. no usable PatientID); kept for staff."""


def enqueue(orthanc_id):
    if not isinstance(orthanc_id, str) or not ORTHANC_ID.fullmatch(orthanc_id):
        raise ValueError("not an Orthanc study ID")
    (
        IngestQueue.insert(orthanc_id=orthanc_id)
        .on_conflict(
            conflict_target=[IngestQueue.orthanc_id],
            update={IngestQueue.attempts: 0, IngestQueue.last_error: ""},
        )
        .execute()
    )


def _text_values(tags):
    """{"gggg,eeee": value} of Orthanc's `?short` tags -> {tag: {values}} for
    the tags rules may name (text VRs), multi-values split, long ones dropped."""
    found = {}
    for tag, value in tags.items():
        if not isinstance(value, str) or not matching.is_recorded_tag(tag):
            continue
        for part in value.split("\\"):
            part = part.strip()
            if part and len(part) <= MAX_VALUE_LENGTH:
                found.setdefault(tag.lower(), set()).add(part)
    return found


ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
# Storage SOP classes that hold no image Orthanc can render: structured
# reports and key objects (…88.*), presentation states (…11.*), the other
# encapsulated documents (CDA, STL, OBJ, MTL: …104.2-5), waveforms (…9.*).
NOT_IMAGES = re.compile(r"1\.2\.840\.10008\.5\.1\.4\.1\.1\.(?:88|11|9|104)\.[0-9.]+")


# Structured reports (…88.*) have a content tree shown as text (authsvc/sr.py);
# but a key object selection (…88.59) only points at images.
STRUCTURED_REPORT = re.compile(r"1\.2\.840\.10008\.5\.1\.4\.1\.1\.88\.[0-9.]+")
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"


def content_kind(sop_class_uid):
    """ "pdf" for a report in PDF, "sr" for a structured report, "other" for
    what holds no image, None for images."""
    uid = (sop_class_uid or "").strip()
    if uid == ENCAPSULATED_PDF:
        return "pdf"
    if STRUCTURED_REPORT.fullmatch(uid) and uid != KEY_OBJECT_SELECTION:
        return "sr"
    return "other" if NOT_IMAGES.fullmatch(uid) else None


def read_study(orthanc, orthanc_id):
    """Everything the service keeps about a study, read from Orthanc."""
    study = orthanc.get(f"/studies/{orthanc_id}")
    series = orthanc.get(f"/studies/{orthanc_id}/series")
    instances = orthanc.get(f"/studies/{orthanc_id}/instances")
    # Performing and reading physicians live at series/instance level and differ
    # between series: read every tag of the first instance of every series.
    first_of_series = {}
    for inst in instances:
        first_of_series.setdefault(inst["ParentSeries"], inst["ID"])
    values = {}
    raw_ids = []
    own = {}
    series_content = {}
    for series_id, instance_id in first_of_series.items():
        tags = orthanc.get(f"/instances/{instance_id}/tags", short="")
        # A series holds one kind of object: its first instance's SOP class
        # says which (an image, the report's PDF...).
        sop_class = tags.get("0008,0016")
        series_content[series_id] = content_kind(sop_class if isinstance(sop_class, str) else "")
        for tag, found in _text_values(tags).items():
            values.setdefault(tag, set()).update(found)
        # The PatientID's bytes as the file holds them, and the character set
        # they are in: what Orthanc recorded is checked against them
        # (conflicts.identity_problems), since Orthanc drops what it cannot decode.
        try:
            raw = orthanc.get_bytes(f"/instances/{instance_id}/content/0010-0020").hex()
        except OrthancNotFound:
            raw = None  # no PatientID element in this file
        charset = tags.get("0008,0005")
        raw_ids.append(
            {
                "series": series_id,
                "raw": raw,
                "charset": charset if isinstance(charset, str) else "",
            }
        )
        if not own:
            # This study's own name and birth date, from its first file.
            own = {
                k: tags.get(t) if isinstance(tags.get(t), str) else ""
                for k, t in (("PatientName", "0010,0010"), ("PatientBirthDate", "0010,0030"))
            }
    modalities = sorted({s.get("MainDicomTags", {}).get("Modality", "") for s in series} - {""})
    return {
        "patient": {**study.get("PatientMainDicomTags", {}), **own},
        "patient_id_raw": raw_ids,
        "patient_orthanc_id": study["ParentPatient"],
        "tags": study.get("MainDicomTags", {}),
        "modalities": modalities,
        "values": {tag: sorted(v) for tag, v in values.items()},
        "series": [
            (s["ID"], s.get("MainDicomTags", {}).get("SeriesInstanceUID", "")) for s in series
        ],
        "instances": [
            (i["ID"], i.get("MainDicomTags", {}).get("SOPInstanceUID", "")) for i in instances
        ],
        # {instance ID: "pdf" | "other"}, for the instances that are not images.
        "content": {
            i["ID"]: series_content[i["ParentSeries"]]
            for i in instances
            if series_content.get(i.get("ParentSeries"))
        },
    }


def access_summary(values):
    """The five access tags by keyword, for staff to see."""
    return {k: values.get(matching.tag_id(k), []) for k in ACCESS_TAGS}


def _store_tag_values(study, values):
    StudyTag.delete().where(StudyTag.study == study).execute()
    rows = []
    for tag, found in values.items():
        is_pn = matching.tag_vr(tag) == "PN"
        for value in found:
            rows.append(
                {
                    "study": study.id,
                    "tag": tag,
                    "value": value,
                    "folded": matching.fold_value(value, is_pn)[:MAX_VALUE_LENGTH],
                }
            )
    for start in range(0, len(rows), 200):
        StudyTag.insert_many(rows[start : start + 200]).execute()


def usable_patient_id(raw):
    """The PatientID a login can be made for, or IngestRejected saying why
    (staff see the reason: GET /api/ingest/problems). It is the PatientID as
    sent, only DICOM's padding removed (spaces and NULs at either end):
    "SP 77" and "SP  77" are two patients, each with their own login."""
    patient_id = (raw or "").strip(" \x00")
    if not patient_id:
        raise IngestRejected("the study has no PatientID: no login can be made")
    if "\\" in patient_id:
        raise IngestRejected(
            "the PatientID holds several values (a backslash): no login can be made"
        )
    if len(patient_id) > 64:
        raise IngestRejected("the PatientID is longer than DICOM allows (64): no login can be made")
    if any(ord(ch) < 32 for ch in patient_id):
        raise IngestRejected("the PatientID holds control characters: no login can be made")
    return patient_id


def new_login(patient_id, orthanc_id, patient_tags):
    """A new patient login with a generated password, kept for the dashboard
    until its slip is printed (encrypted only). Returns (patient, password)."""
    password = passwords.generate()
    set_at = utcnow()
    name = patient_tags.get("PatientName", "")
    patient = Patient.create(
        patient_id=patient_id,
        orthanc_id=orthanc_id,
        name=name,
        search_name=fold(name),
        birth_date=patient_tags.get("PatientBirthDate", ""),
        password_hash=passwords.hash_password(password),
        password_set_at=set_at,
        display_password=display.seal(patient_id, password, set_at),
    )
    return patient, password


def _login_for(orthanc_id, data):
    """(patient, new password or None) of the login a study goes to, or
    (None, None) when its identity conflicts with that login: the study is
    then held back for staff (authsvc/conflicts.py) and recorded nowhere."""
    held = IdentityConflict.get_or_none(IdentityConflict.study_orthanc_id == orthanc_id)
    if held is not None and held.state != conflicts.OPEN and held.login_id is not None:
        return held.login, None  # resolved by staff: the login they chose
    patient_id = usable_patient_id(data["patient"].get("PatientID"))
    patient = Patient.get_or_none(Patient.patient_id == patient_id)
    problems = conflicts.identity_problems(data, patient)
    if held is not None and held.state == conflicts.OPEN and not problems:
        problems = json.loads(held.problems)  # held until staff resolve it
    if problems:
        conflicts.hold(orthanc_id, data, patient_id, problems)
        # Recorded before and now in conflict (late files of another person
        # under its StudyInstanceUID): no login sees it any more.
        Study.delete().where(Study.orthanc_id == orthanc_id).execute()
        return None, None
    if patient is not None:
        return patient, None
    patient, password = new_login(patient_id, data["patient_orthanc_id"], data["patient"])
    audit.record(
        "password_issued",
        actor="ingest",
        subject=f"patient {patient_id}",
        detail="login created with the first study",
    )
    return patient, password


def store_study(orthanc_id, data, patient=None):
    """Record (or update) one study; create the patient's login the first time.
    Returns the new password when a login was created, else None (also when
    the study is held back as an identity conflict). `patient`: the login
    staff chose for it (conflicts.resolve), no checks made."""
    tags = data["tags"]
    new_password = None
    with write_transaction():
        if patient is None:
            patient, new_password = _login_for(orthanc_id, data)
            if patient is None:
                return None
        fields = dict(
            study_uid=tags.get("StudyInstanceUID", ""),
            patient=patient,
            patient_name=data["patient"].get("PatientName", ""),
            study_date=tags.get("StudyDate", ""),
            description=tags.get("StudyDescription", ""),
            modalities="\\".join(data["modalities"]),
            access_tags=json.dumps(access_summary(data["values"]), ensure_ascii=False),
            updated_at=utcnow(),
        )
        study = Study.get_or_none(Study.orthanc_id == orthanc_id)
        if study is None:
            study = Study.create(orthanc_id=orthanc_id, **fields)
        else:
            Study.update(**fields).where(Study.id == study.id).execute()
        # A study becomes stable again when late instances arrive: the index of
        # its resources is rewritten whole.
        Resource.delete().where(Resource.study == study).execute()
        content = data.get("content") or {}
        rows = [
            dict(orthanc_id=i, uid=u, level="series", study=study, content=None)
            for i, u in data["series"]
        ] + [
            dict(orthanc_id=i, uid=u, level="instance", study=study, content=content.get(i))
            for i, u in data["instances"]
        ]
        for start in range(0, len(rows), 200):
            Resource.insert_many(rows[start : start + 200]).execute()
        _store_tag_values(study, data["values"])
        rules.match_study(study)
    return new_password


def record_study(orthanc, orthanc_id):
    return store_study(orthanc_id, read_study(orthanc, orthanc_id))


def process_queue(orthanc):
    """Record every queued study. Stops at the first Orthanc outage (the rest
    stays queued for the next pass). Returns how many were recorded."""
    recorded = 0
    pending = (
        IngestQueue.select()
        .where(IngestQueue.attempts < MAX_ATTEMPTS)
        .order_by(IngestQueue.queued_at)
    )
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
        except (OperationalError, InterfaceError) as exc:
            # Locked past the busy timeout (docs/architecture.md, Ingest: 5 s), full, or the server
            # gone: the study's transaction was rolled back whole and it stays
            # queued, no attempt spent; the next pass tries again.
            log.warning(
                "database busy or unavailable while recording %s (%s); will retry",
                row.orthanc_id,
                exc,
            )
            break
        except IngestRejected as exc:
            IngestQueue.update(attempts=MAX_ATTEMPTS, last_error=str(exc)).where(
                IngestQueue.id == row.id
            ).execute()
            log.warning("study %s not recorded: %s", row.orthanc_id, exc)
            continue
        except Exception:
            log.exception("unexpected error recording study %s", row.orthanc_id)
            IngestQueue.update(
                attempts=IngestQueue.attempts + 1, last_error="internal error (see the service log)"
            ).where(IngestQueue.id == row.id).execute()
            continue
        row.delete_instance()
        recorded += 1
        log.info(
            "study %s recorded%s", row.orthanc_id, "; new patient login created" if created else ""
        )
    return recorded


PENDING_KEY = "pending_studies"


def _pending():
    return set(json.loads(get_value(PENDING_KEY, "[]")))


def _set_pending(ids):
    set_value(PENDING_KEY, json.dumps(sorted(ids)))


def follow_changes(orthanc):
    """Queue every StableStudy change after the last sequence read, and keep
    the studies of NewStudy changes that are not stable yet as pending
    (check_pending): their StableStudy event is lost if Orthanc stops first."""
    since = int(get_value(CHANGES_KEY, "0"))
    newest = orthanc.get("/changes", last="").get("Last", 0)
    if newest < since:
        # Orthanc's database was replaced (restore, reinstall): read it all again.
        log.warning(
            "Orthanc's change log restarted (%s < %s); reading it from the start", newest, since
        )
        since = 0
    while True:
        page = orthanc.get("/changes", since=since, limit=500)
        with write_transaction():
            pending = _pending()
            before = set(pending)
            for change in page.get("Changes", []):
                if change.get("ChangeType") == "StableStudy":
                    enqueue(change["ID"])
                    pending.discard(change["ID"])
                elif change.get("ChangeType") == "NewStudy" and ORTHANC_ID.fullmatch(
                    str(change.get("ID", ""))
                ):
                    pending.add(change["ID"])
            if pending != before:
                _set_pending(pending)
            since = max(since, int(page.get("Last", since)))
            set_value(CHANGES_KEY, since)
        if page.get("Done", True):
            return since


def check_pending(orthanc):
    """Queue each pending study (seen in a NewStudy change, no StableStudy
    yet) that Orthanc now calls stable. After a restart Orthanc calls every
    study stable at once but sends no StableStudy event for the ones that
    were unstable when it stopped: this finds them at the next pass, however
    briefly Orthanc was away. Returns how many were queued."""
    pending = _pending()
    if not pending:
        return 0
    known = {
        row.orthanc_id
        for row in Study.select(Study.orthanc_id).where(Study.orthanc_id.in_(list(pending)))
    }
    known |= {
        row.orthanc_id
        for row in IngestQueue.select(IngestQueue.orthanc_id).where(
            IngestQueue.orthanc_id.in_(list(pending))
        )
    }
    queued = 0
    for orthanc_id in sorted(pending - known):
        try:
            if not orthanc.get(f"/studies/{orthanc_id}").get("IsStable"):
                continue  # still receiving: looked at again at the next pass
        except OrthancNotFound:
            known.add(orthanc_id)  # deleted meanwhile
            continue
        enqueue(orthanc_id)
        known.add(orthanc_id)
        queued += 1
    with database.atomic():
        # Re-read: follow_changes may not run concurrently (the ingest lock),
        # but keep any ID another pass added.
        _set_pending(_pending() - known)
    if queued:
        log.warning(
            "%d studies became stable without their StableStudy event "
            "(Orthanc restarted?); queued now",
            queued,
        )
    return queued


RECONCILED_KEY = "reconciled_at"


def reconcile(orthanc):
    """Queue every stable study Orthanc holds that the service has not
    recorded. /changes cannot find them all: a study still unstable when
    Orthanc stopped never gets its StableStudy event (Orthanc keeps stability
    in memory), nor does one whose events were lost with a restored backup.
    Studies already queued (being retried, or refused with a reason) are
    left as they are. Returns how many were queued."""
    known = {row.orthanc_id for row in Study.select(Study.orthanc_id)}
    known |= {row.orthanc_id for row in IngestQueue.select(IngestQueue.orthanc_id)}
    known |= {
        row.study_orthanc_id for row in IdentityConflict.select(IdentityConflict.study_orthanc_id)
    }
    queued = 0
    for orthanc_id in orthanc.get("/studies"):
        if orthanc_id in known:
            continue
        try:
            if not orthanc.get(f"/studies/{orthanc_id}").get("IsStable"):
                continue  # its StableStudy event will come
        except OrthancNotFound:
            continue
        enqueue(orthanc_id)
        queued += 1
    set_value(RECONCILED_KEY, utcnow().isoformat())
    if queued:
        log.warning("%d stable studies of Orthanc were not recorded; queued now", queued)
    return queued


class IngestWorker:
    """Background thread of a service process: a pass on every notification
    and every CHANGES_POLL_SECONDS; a reconciliation with Orthanc's list of
    studies every RECONCILE_SECONDS, at start, and after Orthanc was
    unreachable (it may have restarted)."""

    def __init__(self, orthanc, lock_path, poll_seconds, before_pass=None, reconcile_seconds=600):
        self.orthanc = orthanc
        self.lock_path = lock_path
        self.poll_seconds = poll_seconds
        self.reconcile_seconds = reconcile_seconds
        self._reconcile_due = 0.0  # monotonic time; 0: at the first pass
        # Rules must be current before new studies are matched against them.
        self.before_pass = before_pass
        self.wake = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None:
            os.makedirs(os.path.dirname(self.lock_path) or ".", exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
            self._thread.start()

    def run_once(self):
        with database.connection_context():
            if self.before_pass:
                self.before_pass()
        with exclusive(self.lock_path), database.connection_context():
            process_queue(self.orthanc)
            try:
                follow_changes(self.orthanc)
                check_pending(self.orthanc)
                if time.monotonic() >= self._reconcile_due:
                    reconcile(self.orthanc)
                    self._reconcile_due = time.monotonic() + self.reconcile_seconds
            except OrthancError as exc:
                log.warning("could not read Orthanc's changes: %s", exc)
                self._reconcile_due = 0.0  # Orthanc may be restarting: reconcile once back
            process_queue(self.orthanc)

    def _run(self):
        while True:
            try:
                self.run_once()
            except Exception:
                log.exception("ingest pass failed; retrying at the next poll")
            self.wake.wait(self.poll_seconds)
            self.wake.clear()
