"""Fills a service database with synthetic studies, straight through peewee
(insert_many in transactions): patients, studies with one series and a few
instances each, and sessions whose tokens the benchmark knows."""

import datetime
import json
import random
import secrets
import time
from dataclasses import dataclass, field

from authsvc import passwords
from authsvc.db import open_database
from authsvc.models import Patient, Resource, Session, StaffUser, Study, utcnow
from authsvc.sessions import SessionStore

INSTANCES_PER_STUDY = 4
STUDIES_PER_PATIENT = 2


def _oid(rng):
    h = f"{rng.getrandbits(160):040x}"
    return "-".join(h[i:i + 8] for i in range(0, 40, 8))


@dataclass
class FakeStudy:
    patient_db_id: int
    orthanc_id: str
    study_uid: str
    series: tuple          # (orthanc_id, uid)
    instances: list        # [(orthanc_id, uid)]


@dataclass
class Filled:
    prefix: str
    studies: int
    patients: int
    resources: int
    seconds: float
    by_patient: dict = field(default_factory=dict)   # patient db id -> [FakeStudy]
    patient_info: dict = field(default_factory=dict)   # patient db id -> (PatientID, orthanc id)


def _batches(rows, size):
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def fill(url, n_studies, prefix="BP", seed=7, keep_every=50):
    """Insert n_studies studies (and n_studies/2 patients). Returns what a
    load generator needs about a sample of them (every `keep_every`-th patient)."""
    rng = random.Random(seed)
    db = open_database(url)
    is_sqlite = url.startswith("sqlite")
    started = time.perf_counter()
    now = utcnow()
    n_patients = max(1, n_studies // STUDIES_PER_PATIENT)
    # One real Argon2id hash for every synthetic patient: patient_has_login is
    # true, and nobody logs in with it (sessions are made directly below).
    dummy_hash = passwords.hash_password(passwords.generate())
    p_fields = [Patient.patient_id, Patient.orthanc_id, Patient.name, Patient.search_name,
                Patient.birth_date, Patient.password_hash, Patient.password_set_at,
                Patient.created_at]
    p_rows = [(f"{prefix}{i:07d}", _oid(rng), f"BENCH^PATIENT{i}", f"bench patient{i}",
               "19700101", dummy_hash, now, now) for i in range(n_patients)]
    # SQLite allows 32766 variables per statement; keep well below.
    size = 30000 // len(p_fields) if is_sqlite else 2000
    with db.atomic():
        for batch in _batches(p_rows, size):
            Patient.insert_many(batch, fields=p_fields).execute()
    patient_ids = dict(Patient.select(Patient.patient_id, Patient.id)
                       .where(Patient.patient_id.startswith(prefix)).tuples())
    filled = Filled(prefix, n_studies, n_patients, 0, 0.0)
    for row in p_rows[::keep_every]:
        filled.patient_info[patient_ids[row[0]]] = (row[0], row[1])

    s_fields = [Study.orthanc_id, Study.study_uid, Study.patient, Study.study_date,
                Study.description, Study.modalities, Study.access_tags, Study.recorded_at,
                Study.updated_at]
    access = json.dumps({"InstitutionName": ["BENCH HOSPITAL"],
                         "ReferringPhysicianName": ["DOE^JANE"]})
    base_uid = "1.2.826.0.1.3680043.10.999"
    old = now - datetime.timedelta(days=1)
    studies = []
    s_rows = []
    for i in range(n_studies):
        pid = patient_ids[f"{prefix}{i % n_patients:07d}"]
        uid = f"{base_uid}.{seed}.{i}"
        oid = _oid(rng)
        # Recorded over the past day, oldest first: real studies come first.
        s_rows.append((oid, uid, pid, "20250101", "BENCH", "CT", access,
                       old + datetime.timedelta(seconds=i * 80000 / n_studies), old))
        studies.append((pid, oid, uid))
    size = 30000 // len(s_fields) if is_sqlite else 2000
    with db.atomic():
        for batch in _batches(s_rows, size):
            Study.insert_many(batch, fields=s_fields).execute()
    study_ids = dict(Study.select(Study.study_uid, Study.id)
                     .where(Study.study_uid.startswith(f"{base_uid}.{seed}.")).tuples())

    r_fields = [Resource.orthanc_id, Resource.uid, Resource.level, Resource.study]
    r_rows = []
    for pid, oid, uid in studies:
        sid = study_ids[uid]
        series = (_oid(rng), f"{uid}.1")
        instances = [(_oid(rng), f"{uid}.1.{j}") for j in range(INSTANCES_PER_STUDY)]
        r_rows.append((series[0], series[1], "series", sid))
        r_rows.extend((o, u, "instance", sid) for o, u in instances)
        if pid in filled.patient_info:
            filled.by_patient.setdefault(pid, []).append(
                FakeStudy(pid, oid, uid, series, instances))
    size = 30000 // len(r_fields) if is_sqlite else 2000
    with db.atomic():
        for batch in _batches(r_rows, size):
            Resource.insert_many(batch, fields=r_fields).execute()
    filled.resources = len(r_rows)
    filled.seconds = time.perf_counter() - started
    db.close()
    return filled


def make_sessions(url, secret_key, patient_db_ids, staff_sessions=4):
    """Live sessions made directly in the database. Returns
    ([(token, patient db id)], [admin tokens])."""
    db = open_database(url)
    store = SessionStore(secret_key, 30, 12)
    now = utcnow()
    expires = now + datetime.timedelta(hours=12)
    fields = [Session.token_hash, Session.kind, Session.patient, Session.staff,
              Session.created_at, Session.last_seen, Session.expires_at, Session.ended]
    patient_tokens, admin_tokens, rows = [], [], []
    for pid in patient_db_ids:
        token = secrets.token_urlsafe(32)
        patient_tokens.append((token, pid))
        rows.append((store.token_hash(token), "patient", pid, None, now, now, expires, False))
    admin = StaffUser.get(StaffUser.role == "admin")
    for _ in range(staff_sessions):
        token = secrets.token_urlsafe(32)
        admin_tokens.append(token)
        rows.append((store.token_hash(token), "staff", None, admin.id, now, now, expires, False))
    with db.atomic():
        for batch in _batches(rows, 1000):
            Session.insert_many(batch, fields=fields).execute()
    db.close()
    return patient_tokens, admin_tokens


def session_for_patient(url, secret_key, patient_id):
    """A live session of a recorded patient (by DICOM PatientID)."""
    db = open_database(url)
    patient = Patient.get(Patient.patient_id == patient_id)
    db.close()
    tokens, _ = make_sessions(url, secret_key, [patient.id], staff_sessions=0)
    return tokens[0][0]


def remove(url, prefix):
    """Delete what `fill` inserted (sessions, studies and resources cascade)."""
    db = open_database(url)
    with db.atomic():
        ids = Patient.select(Patient.id).where(Patient.patient_id.startswith(prefix))
        Session.delete().where(Session.patient.in_(ids)).execute()
        studies = Study.select(Study.id).where(Study.patient.in_(ids))
        Resource.delete().where(Resource.study.in_(studies)).execute()
        Study.delete().where(Study.patient.in_(ids)).execute()
        Patient.delete().where(Patient.patient_id.startswith(prefix)).execute()
    db.close()


def remove_sessions(url, secret_key, tokens):
    """Delete sessions made by make_sessions (staff ones are not under a prefix)."""
    store = SessionStore(secret_key, 30, 12)
    db = open_database(url)
    with db.atomic():
        Session.delete().where(Session.token_hash.in_([store.token_hash(t) for t in tokens])).execute()
    db.close()
