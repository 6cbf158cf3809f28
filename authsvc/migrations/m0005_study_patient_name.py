"""Each study's own PatientName; studies recorded before get their login's
(the first study's), the best known."""

from peewee import CharField, ForeignKeyField, Model

from .ops import add_missing_columns


class Patient(Model):
    name = CharField(max_length=324, default="")

    class Meta:
        table_name = "patient"


class Study(Model):
    patient = ForeignKeyField(Patient, on_delete="CASCADE")
    patient_name = CharField(max_length=324, default="")

    class Meta:
        table_name = "study"


def apply(db):
    with db.bind_ctx([Patient, Study]):
        add_missing_columns(db, Study, "patient_name")
        (
            Study.update(
                patient_name=Patient.select(Patient.name).where(Patient.id == Study.patient)
            )
            .where(Study.patient_name == "")
            .execute()
        )
