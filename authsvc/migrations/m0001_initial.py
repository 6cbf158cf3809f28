"""The first schema: the tables and columns as they were while this was the
only migration (patients, their studies and the studies' Orthanc resources,
staff, sessions, the ingest queue, small persistent values)."""

from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

from .ops import utcnow


class Patient(Model):
    patient_id = CharField(max_length=64, unique=True)
    orthanc_id = CharField(max_length=44, unique=True)
    name = CharField(max_length=324, default="")
    birth_date = CharField(max_length=8, default="")
    password_hash = CharField(max_length=255, null=True)
    password_set_at = DateTimeField(null=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "patient"


class Study(Model):
    orthanc_id = CharField(max_length=44, unique=True)
    study_uid = CharField(max_length=64, index=True)
    patient = ForeignKeyField(Patient, on_delete="CASCADE")
    study_date = CharField(max_length=8, default="")
    description = CharField(max_length=255, default="")
    modalities = CharField(max_length=255, default="")
    access_tags = TextField(default="{}")
    recorded_at = DateTimeField(default=utcnow, index=True)
    updated_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "study"


class Resource(Model):
    orthanc_id = CharField(max_length=44, unique=True)
    uid = CharField(max_length=64, index=True)
    level = CharField(max_length=8)
    study = ForeignKeyField(Study, on_delete="CASCADE")

    class Meta:
        table_name = "resource"


class StaffUser(Model):
    username = CharField(max_length=64, unique=True)
    role = CharField(max_length=16, default="admin")
    password_hash = CharField(max_length=255)
    active = BooleanField(default=True)
    created_at = DateTimeField(default=utcnow)

    class Meta:
        table_name = "staffuser"


class Session(Model):
    token_hash = CharField(max_length=64, unique=True)
    kind = CharField(max_length=16)
    patient = ForeignKeyField(Patient, null=True, on_delete="CASCADE")
    staff = ForeignKeyField(StaffUser, null=True, on_delete="CASCADE")
    created_at = DateTimeField(default=utcnow)
    last_seen = DateTimeField(default=utcnow)
    expires_at = DateTimeField(index=True)
    ended = BooleanField(default=False)

    class Meta:
        table_name = "session"


class IngestQueue(Model):
    orthanc_id = CharField(max_length=44, unique=True)
    queued_at = DateTimeField(default=utcnow)
    attempts = IntegerField(default=0)
    last_error = TextField(default="")

    class Meta:
        table_name = "ingestqueue"


class KeyValue(Model):
    key = CharField(max_length=64, unique=True)
    value = TextField()

    class Meta:
        table_name = "keyvalue"


TABLES = [Patient, Study, Resource, StaffUser, Session, IngestQueue, KeyValue]


def apply(db):
    # safe: a database made before migrations were frozen ran its first
    # migration from the models of its day; it has these tables already.
    with db.bind_ctx(TABLES):
        db.create_tables(TABLES, safe=True)
