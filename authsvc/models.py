"""Tables: patients and their logins, studies and the Orthanc resources in them,
staff accounts, sessions, and the service's own bookkeeping."""

import datetime

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from .db import database

_UTC = datetime.timezone.utc
_now = datetime.datetime.now


def utcnow():
    """Now in UTC, naive (as the database keeps it); names bound once: every
    decision asks."""
    return _now(_UTC).replace(tzinfo=None)


class BaseModel(Model):
    class Meta:
        database = database


class Patient(BaseModel):
    # DICOM PatientID (LO, up to 64 characters); the patient's login name.
    patient_id = CharField(max_length=64, unique=True)
    orthanc_id = CharField(max_length=44, unique=True)
    name = CharField(max_length=324, default="")
    # The name folded for search: no case, no accents, components as words.
    search_name = CharField(max_length=324, default="", index=True)
    birth_date = CharField(max_length=8, default="")
    # Argon2id hash; the plaintext is never stored.
    password_hash = CharField(max_length=255, null=True)
    password_set_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)
    # Until its slip is printed, a new password is kept for the dashboard only
    # encrypted, under a key outside the database (authsvc/display.py).
    display_password = TextField(null=True)
    slip_printed_at = DateTimeField(null=True)
    slip_language = CharField(max_length=8, default="")  # "" = the site's default


class Study(BaseModel):
    orthanc_id = CharField(max_length=44, unique=True)
    study_uid = CharField(max_length=64, index=True)
    patient = ForeignKeyField(Patient, backref="studies", on_delete="CASCADE")
    study_date = CharField(max_length=8, default="")
    description = CharField(max_length=255, default="")
    modalities = CharField(max_length=255, default="")
    # The PatientName of this study's own files (a login's studies may carry
    # differently spelt names; each is shown with its own).
    patient_name = CharField(max_length=324, default="")
    # The five access tags, every value seen in any series, as JSON
    # {keyword: [values]}, for staff to see (the tag rules match StudyTag rows).
    access_tags = TextField(default="{}")
    recorded_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)


class Resource(BaseModel):
    """Series and instances of a recorded study, so that an access decision
    never has to ask Orthanc (the Lua filter holds Orthanc's Lua lock while it
    waits for the answer: a call back into Orthanc would deadlock)."""

    orthanc_id = CharField(max_length=44, unique=True)
    uid = CharField(max_length=64, index=True)
    level = CharField(max_length=8)  # "series" | "instance"
    study = ForeignKeyField(Study, backref="resources", on_delete="CASCADE")
    # What an instance holds when it is not an image (ingest.content_kind):
    # "pdf" (an Encapsulated PDF: the radiologist's report), "sr" (a
    # structured report, shown as text) or "other" (a key object, a
    # presentation state...). None: an image, or a series, or recorded
    # before this was kept.
    content = CharField(max_length=8, null=True)


class StaffUser(BaseModel):
    username = CharField(max_length=64, unique=True)
    role = CharField(max_length=16, default="admin")  # admin | radiologist
    password_hash = CharField(max_length=255)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)


class StudyTag(BaseModel):
    """Every text value of every recorded tag of a study (from the first
    instance of each series), so that rules can change without re-reading
    Orthanc. `folded` is the value as rules compare it."""

    study = ForeignKeyField(Study, backref="tag_values", on_delete="CASCADE")
    tag = CharField(max_length=9)  # "gggg,eeee"
    value = CharField(max_length=1024)
    folded = CharField(max_length=1024)

    class Meta:
        indexes = ((("tag", "folded"), False), (("study", "tag"), False))


class RuleLogin(BaseModel):
    """A login opened by tag rules (a physician, an institution); kept in sync
    with the rules file, which is the source of truth."""

    name = CharField(max_length=64, unique=True)
    description = CharField(max_length=255, default="")
    password_hash = CharField(max_length=255, null=True)
    active = BooleanField(default=True)
    digest = CharField(max_length=64, default="")  # of its rules, to spot changes


class Rule(BaseModel):
    login = ForeignKeyField(RuleLogin, backref="rules", on_delete="CASCADE")
    tag = CharField(max_length=9)
    value = CharField(max_length=1024)


class RuleMatch(BaseModel):
    """Which studies each rule login sees: computed at ingest and whenever
    the rules change, so decisions and lists are one indexed lookup."""

    login = ForeignKeyField(RuleLogin, on_delete="CASCADE")
    study = ForeignKeyField(Study, on_delete="CASCADE")

    class Meta:
        indexes = ((("login", "study"), True), (("study",), False))


class Share(BaseModel):
    """Access a patient handed to someone: one study, or all their studies
    (study null), until expiry or revocation."""

    secret_hash = CharField(max_length=64, unique=True)  # HMAC, like session tokens
    patient = ForeignKeyField(Patient, backref="shares", on_delete="CASCADE")
    study = ForeignKeyField(Study, null=True, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)
    revoked_at = DateTimeField(null=True)
    revoked_by = CharField(max_length=80, default="")
    # When the link last opened a session (its sessions' last_seen says
    # later use); null: never used.
    last_used_at = DateTimeField(null=True)


class Session(BaseModel):
    # HMAC-SHA256 of the token under the secret key: a stolen database gives
    # no usable token, and lookup stays one indexed query.
    token_hash = CharField(max_length=64, unique=True)
    kind = CharField(max_length=16)  # patient | staff | rule | share
    patient = ForeignKeyField(Patient, null=True, on_delete="CASCADE")
    staff = ForeignKeyField(StaffUser, null=True, on_delete="CASCADE")
    rule_login = ForeignKeyField(RuleLogin, null=True, on_delete="CASCADE")
    share = ForeignKeyField(Share, null=True, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    last_seen = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)
    ended = BooleanField(default=False)


class IngestQueue(BaseModel):
    """Studies Orthanc said are stable and that are not recorded yet. Written
    before the notification is acknowledged, so a crash loses nothing."""

    orthanc_id = CharField(max_length=44, unique=True)
    queued_at = DateTimeField(default=utcnow)
    attempts = IntegerField(default=0)
    last_error = TextField(default="")


class IdentityConflict(BaseModel):
    """A stable study whose identity does not match the login its PatientID
    names (characters Orthanc dropped, another birth date or name): recorded
    here instead of in Study, so no patient, share or rule login sees it,
    until an admin attaches it to a login or makes a separate one
    (authsvc/conflicts.py)."""

    study_orthanc_id = CharField(max_length=44, unique=True)
    # Orthanc files the study under the Orthanc patient of the PatientID it
    # recorded: that patient's own routes (/patients/{id}/archive...) hold it.
    patient_orthanc_id = CharField(max_length=44)
    patient_id = CharField(max_length=64)  # the PatientID as Orthanc recorded it
    problems = TextField(default="[]")  # JSON [{"code": ..., details}]
    snapshot = TextField(default="{}")  # what ingest read, to record it once resolved
    state = CharField(max_length=10, default="open")  # open | attached | separate
    login = ForeignKeyField(Patient, null=True, on_delete="SET NULL")  # resolved to
    # True while the Orthanc patient holds this study of a login other than
    # its own (or of none yet): its patient-level routes must then be refused.
    blocks_patient_level = BooleanField(default=True)
    detected_at = DateTimeField(default=utcnow)
    resolved_at = DateTimeField(null=True)
    resolved_by = CharField(max_length=120, default="")

    class Meta:
        indexes = (
            (("patient_orthanc_id", "blocks_patient_level"), False),
            (("state", "detected_at"), False),
        )


class KeyValue(BaseModel):
    """Small persistent state, e.g. the last /changes sequence read."""

    key = CharField(max_length=64, unique=True)
    value = TextField()


class LoginFailure(BaseModel):
    """One failed login, by account or client address key (see throttle.py)."""

    key = CharField(max_length=128)
    at = DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("key", "at"), False),)


class AuditEvent(BaseModel):
    """Append-only, hash-chained (see audit.py)."""

    at = DateTimeField(default=utcnow, index=True)
    event = CharField(max_length=32, index=True)
    actor = CharField(max_length=120, default="", index=True)
    subject = CharField(max_length=120, default="")
    address = CharField(max_length=64, default="")
    detail = CharField(max_length=500, default="")
    chain = CharField(max_length=64)

    class Meta:
        # A patient's access log reads a study's openings (authsvc/access_log.py).
        indexes = ((("event", "subject"), False),)


class StudyAccess(BaseModel):
    """Which principal opened which study in which hour (audit de-duplication)."""

    principal = CharField(max_length=120)
    study = CharField(max_length=44)
    hour = CharField(max_length=13)

    class Meta:
        indexes = ((("principal", "study", "hour"), True),)


class SchemaVersion(BaseModel):
    version = IntegerField(unique=True)
    applied_at = DateTimeField(default=utcnow)


ALL_MODELS = [
    Patient,
    Study,
    Resource,
    StaffUser,
    StudyTag,
    RuleLogin,
    Rule,
    RuleMatch,
    Share,
    Session,
    IngestQueue,
    IdentityConflict,
    KeyValue,
    LoginFailure,
    AuditEvent,
    StudyAccess,
    SchemaVersion,
]


def get_value(key, default=None):
    row = KeyValue.get_or_none(KeyValue.key == key)
    return row.value if row else default


def set_value(key, value):
    (
        KeyValue.insert(key=key, value=str(value))
        .on_conflict(conflict_target=[KeyValue.key], update={KeyValue.value: str(value)})
        .execute()
    )
