"""The encrypted display copy of a new password and the slip's state; and the
patient's name folded for search (search_name), which the models gained
without a migration while 0001 was the only one: a database made before it
lacks the column, one made after has it (its 0001 made it), so it is added
only where missing, and filled from each patient's name."""

import unicodedata

from peewee import CharField, DateTimeField, Model, TextField

from .ops import add_missing_columns


class Patient(Model):
    name = CharField(max_length=324, default="")
    search_name = CharField(max_length=324, default="", index=True)
    display_password = TextField(null=True)
    slip_printed_at = DateTimeField(null=True)
    slip_language = CharField(max_length=8, default="")

    class Meta:
        table_name = "patient"


def fold(text):
    """The search form of a person name then (ingest writes it since):
    "NÚÑEZ^JOSÉ" -> "nunez jose"."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(bare.casefold().replace("^", " ").replace("=", " ").split())


def apply(db):
    with db.bind_ctx([Patient]):
        added = add_missing_columns(
            db, Patient, "search_name", "display_password", "slip_printed_at", "slip_language"
        )
        if "search_name" in added:
            # Without it a patient recorded before would never be found by name.
            for patient in Patient.select(Patient.id, Patient.name).where(Patient.name != ""):
                Patient.update(search_name=fold(patient.name)).where(
                    Patient.id == patient.id
                ).execute()
