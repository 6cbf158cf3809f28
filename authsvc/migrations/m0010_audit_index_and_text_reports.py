"""The index a patient's access log reads by (authsvc/access_log.py); and the
studies with an instance recorded as "other" are read again: structured
reports among them are now "sr", shown as text."""

from peewee import CharField, DateTimeField, ForeignKeyField, IntegerField, Model, TextField

from .ops import ensure_index, utcnow


class Study(Model):
    orthanc_id = CharField(max_length=44, unique=True)

    class Meta:
        table_name = "study"


class Resource(Model):
    study = ForeignKeyField(Study, on_delete="CASCADE")
    content = CharField(max_length=8, null=True)

    class Meta:
        table_name = "resource"


class IngestQueue(Model):
    orthanc_id = CharField(max_length=44, unique=True)
    queued_at = DateTimeField(default=utcnow)
    attempts = IntegerField(default=0)
    last_error = TextField(default="")

    class Meta:
        table_name = "ingestqueue"


def apply(db):
    # Where the first migration ran from models that had it, it is there.
    ensure_index(db, "auditevent", "auditevent_event_subject", ("event", "subject"))
    with db.bind_ctx([Study, Resource, IngestQueue]):
        other = (
            Study.select(Study.orthanc_id)
            .join(Resource)
            .where(Resource.content == "other")
            .distinct()
        )
        for study in other:
            IngestQueue.insert(orthanc_id=study.orthanc_id).on_conflict_ignore().execute()
