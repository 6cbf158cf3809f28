"""Fills a service database with synthetic studies, straight through peewee
(insert_many in transactions): patients, studies with one series and a few
instances each, each study's referring physician (one of PHYSICIANS names,
recorded as ingest records tag values), B2's "1k rules" (one rule login per
physician for the first RULES of them, applied by the service's own
`rules.sync`), and sessions whose tokens the benchmark knows."""

import datetime
import json
import random
import secrets
import time
from dataclasses import dataclass, field

from authsvc import auditchain, passwords, rules
from authsvc.db import open_database
from authsvc.locks import exclusive
from authsvc.matching import fold_value
from authsvc.models import (
    Patient,
    Resource,
    RuleLogin,
    Session,
    StaffUser,
    Study,
    StudyTag,
    set_value,
    utcnow,
)
from authsvc.sessions import SessionStore

INSTANCES_PER_STUDY = 4
STUDIES_PER_PATIENT = 2
PHYSICIANS = 2000  # referring physicians named in the studies
RULES = 1000  # rule logins: one for each of the first RULES physicians
REFERRING = "0008,0090"


def physician(k):
    return f"MEDICO{k:04d}^ANA"


def _oid(rng):
    h = f"{rng.getrandbits(160):040x}"
    return "-".join(h[i : i + 8] for i in range(0, 40, 8))


@dataclass
class FakeStudy:
    patient_db_id: int
    orthanc_id: str
    study_uid: str
    series: tuple  # (orthanc_id, uid)
    instances: list  # [(orthanc_id, uid)]
    physician: int = 0  # index of its referring physician


@dataclass
class Filled:
    prefix: str
    studies: int
    patients: int
    resources: int
    seconds: float
    by_patient: dict = field(default_factory=dict)  # patient db id -> [FakeStudy]
    patient_info: dict = field(default_factory=dict)  # patient db id -> (PatientID, orthanc id)
    by_physician: dict = field(default_factory=dict)  # physician index -> [FakeStudy] (sample)


def _batches(rows, size):
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


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
    p_fields = [
        Patient.patient_id,
        Patient.orthanc_id,
        Patient.name,
        Patient.search_name,
        Patient.birth_date,
        Patient.password_hash,
        Patient.password_set_at,
        Patient.created_at,
    ]
    p_rows = [
        (
            f"{prefix}{i:07d}",
            _oid(rng),
            f"BENCH^PATIENT{i}",
            f"bench patient{i}",
            "19700101",
            dummy_hash,
            now,
            now,
        )
        for i in range(n_patients)
    ]
    # SQLite allows 32766 variables per statement; keep well below.
    size = 30000 // len(p_fields) if is_sqlite else 2000
    with db.atomic():
        for batch in _batches(p_rows, size):
            Patient.insert_many(batch, fields=p_fields).execute()
    patient_ids = dict(
        Patient.select(Patient.patient_id, Patient.id)
        .where(Patient.patient_id.startswith(prefix))
        .tuples()
    )
    filled = Filled(prefix, n_studies, n_patients, 0, 0.0)
    for row in p_rows[::keep_every]:
        filled.patient_info[patient_ids[row[0]]] = (row[0], row[1])

    s_fields = [
        Study.orthanc_id,
        Study.study_uid,
        Study.patient,
        Study.study_date,
        Study.description,
        Study.modalities,
        Study.access_tags,
        Study.recorded_at,
        Study.updated_at,
    ]
    base_uid = "1.2.826.0.1.3680043.10.999"
    old = now - datetime.timedelta(days=1)
    studies = []
    s_rows = []
    for i in range(n_studies):
        pid = patient_ids[f"{prefix}{i % n_patients:07d}"]
        uid = f"{base_uid}.{seed}.{i}"
        oid = _oid(rng)
        doctor = rng.randrange(PHYSICIANS)
        access = json.dumps(
            {"InstitutionName": ["BENCH HOSPITAL"], "ReferringPhysicianName": [physician(doctor)]}
        )
        # Recorded over the past day, oldest first: real studies come first.
        s_rows.append(
            (
                oid,
                uid,
                pid,
                "20250101",
                "BENCH",
                "CT",
                access,
                old + datetime.timedelta(seconds=i * 80000 / n_studies),
                old,
            )
        )
        studies.append((pid, oid, uid, doctor))
    size = 30000 // len(s_fields) if is_sqlite else 2000
    with db.atomic():
        for batch in _batches(s_rows, size):
            Study.insert_many(batch, fields=s_fields).execute()
    study_ids = dict(
        Study.select(Study.study_uid, Study.id)
        .where(Study.study_uid.startswith(f"{base_uid}.{seed}."))
        .tuples()
    )

    r_fields = [Resource.orthanc_id, Resource.uid, Resource.level, Resource.study]
    t_fields = [StudyTag.study, StudyTag.tag, StudyTag.value, StudyTag.folded]
    r_rows, t_rows = [], []
    for pid, oid, uid, doctor in studies:
        sid = study_ids[uid]
        series = (_oid(rng), f"{uid}.1")
        instances = [(_oid(rng), f"{uid}.1.{j}") for j in range(INSTANCES_PER_STUDY)]
        r_rows.append((series[0], series[1], "series", sid))
        r_rows.extend((o, u, "instance", sid) for o, u in instances)
        name = physician(doctor)
        t_rows.append((sid, REFERRING, name, fold_value(name, True)))
        if pid in filled.patient_info:
            study = FakeStudy(pid, oid, uid, series, instances, doctor)
            filled.by_patient.setdefault(pid, []).append(study)
            filled.by_physician.setdefault(doctor, []).append(study)
    size = 30000 // len(r_fields) if is_sqlite else 2000
    with db.atomic():
        for batch in _batches(r_rows, size):
            Resource.insert_many(batch, fields=r_fields).execute()
        for batch in _batches(t_rows, size):
            StudyTag.insert_many(batch, fields=t_fields).execute()
    filled.resources = len(r_rows)
    filled.seconds = time.perf_counter() - started
    if not is_sqlite:
        # As after any bulk load: statistics now, not from autovacuum in the
        # middle of a measured run.
        db.execute_sql("VACUUM ANALYZE")
    db.close()
    return filled


def write_rules(rules_path, passwords_path, n_rules=RULES):
    """The rules file of `n_rules` rule logins, dr-0000 for physician 0 and so
    on, written three ways in turn (carets, spaces, a wildcard), and a rule
    passwords file giving each the same real Argon2id hash (nobody logs in
    with it: sessions are made directly)."""
    logins = []
    for k in range(n_rules):
        family, given = physician(k).split("^")
        value = [physician(k), f"{family} {given}", f"{family}^AN*"][k % 3]
        logins.append(
            {"login": f"dr-{k:04d}", "rules": [{"tag": "ReferringPhysicianName", "value": value}]}
        )
    with open(rules_path, "w") as fh:
        json.dump({"logins": logins}, fh)
    dummy_hash = passwords.hash_password(passwords.generate())
    with open(passwords_path, "w") as fh:
        json.dump({f"dr-{k:04d}": dummy_hash for k in range(n_rules)}, fh)


def apply_rules(url, rules_path, passwords_path, lock_path, service_secrets):
    """The service's own sync of the rules files into the database at `url`,
    every login's matching studies computed, as for a rules file whose every
    rule changed (a service that started before the fill may have synced the
    same files already, over no studies). `lock_path` is the service's
    rules lock: its own sync must not run meanwhile. `service_secrets`: the
    service's, whose audit key keys the sync's audit entries as the service
    would (without it each entry failed, with a traceback, in the bench's
    log). Returns (seconds, {physician index: rule login db id})."""
    auditchain.configure(auditchain.derive_key(service_secrets), None)
    db = open_database(url)
    started = time.perf_counter()
    with exclusive(lock_path), db.connection_context():
        RuleLogin.update(digest="").execute()
        set_value(rules.DIGEST_KEY, "")
        rules.sync(rules_path, passwords_path)
        seconds = time.perf_counter() - started
        logins = {
            int(name[3:]): lid
            for name, lid in RuleLogin.select(RuleLogin.name, RuleLogin.id).tuples()
            if name.startswith("dr-")
        }
        if not url.startswith("sqlite"):
            db.execute_sql("VACUUM ANALYZE")
    db.close()
    return seconds, logins


@dataclass
class Tokens:
    patients: list  # [(token, patient db id)]
    admins: list  # [token]
    rules: list  # [(token, physician index)]


def make_sessions(url, secret_key, patient_db_ids, staff_sessions=4, rule_logins=None):
    """Live sessions made directly in the database: one per patient, a few
    admins, one per rule login of `rule_logins` ({physician index: login db id})."""
    db = open_database(url)
    store = SessionStore(secret_key, 30, 12)
    now = utcnow()
    expires = now + datetime.timedelta(hours=12)
    fields = [
        Session.token_hash,
        Session.kind,
        Session.patient,
        Session.staff,
        Session.rule_login,
        Session.created_at,
        Session.last_seen,
        Session.expires_at,
        Session.ended,
    ]
    tokens, rows = Tokens([], [], []), []
    rng = random.Random(len(patient_db_ids))

    def seen():
        # Last used at some moment of the past minute, as real sessions are:
        # each one's once-a-minute last_seen write then comes at its own time,
        # not all of them in the same second.
        return now - datetime.timedelta(seconds=rng.uniform(0, 59))

    for pid in patient_db_ids:
        token = secrets.token_urlsafe(32)
        tokens.patients.append((token, pid))
        rows.append(
            (store.token_hash(token), "patient", pid, None, None, now, seen(), expires, False)
        )
    admin = StaffUser.get(StaffUser.role == "admin")
    for _ in range(staff_sessions):
        token = secrets.token_urlsafe(32)
        tokens.admins.append(token)
        rows.append(
            (store.token_hash(token), "staff", None, admin.id, None, now, seen(), expires, False)
        )
    for k, login_id in sorted((rule_logins or {}).items()):
        token = secrets.token_urlsafe(32)
        tokens.rules.append((token, k))
        rows.append(
            (store.token_hash(token), "rule", None, None, login_id, now, seen(), expires, False)
        )
    with db.atomic():
        for batch in _batches(rows, 1000):
            Session.insert_many(batch, fields=fields).execute()
    db.close()
    return tokens


def session_for_patient(url, secret_key, patient_id):
    """A live session of a recorded patient (by DICOM PatientID)."""
    db = open_database(url)
    patient = Patient.get(Patient.patient_id == patient_id)
    db.close()
    return make_sessions(url, secret_key, [patient.id], staff_sessions=0).patients[0][0]
