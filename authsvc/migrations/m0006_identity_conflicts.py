"""The studies held back as identity conflicts (authsvc/conflicts.py)."""

from peewee import BooleanField, CharField, DateTimeField, ForeignKeyField, Model, TextField

from .ops import utcnow


class Patient(Model):
    class Meta:
        table_name = "patient"


class IdentityConflict(Model):
    study_orthanc_id = CharField(max_length=44, unique=True)
    patient_orthanc_id = CharField(max_length=44)
    patient_id = CharField(max_length=64)
    problems = TextField(default="[]")
    snapshot = TextField(default="{}")
    state = CharField(max_length=10, default="open")
    login = ForeignKeyField(Patient, null=True, on_delete="SET NULL")
    blocks_patient_level = BooleanField(default=True)
    detected_at = DateTimeField(default=utcnow)
    resolved_at = DateTimeField(null=True)
    resolved_by = CharField(max_length=120, default="")

    class Meta:
        table_name = "identityconflict"
        indexes = (
            (("patient_orthanc_id", "blocks_patient_level"), False),
            (("state", "detected_at"), False),
        )


def apply(db):
    with db.bind_ctx([Patient, IdentityConflict]):
        db.create_tables([IdentityConflict], safe=True)
