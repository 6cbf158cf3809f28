"""What an instance holds when it is not an image (a PDF report...). Studies
recorded before, whose modalities may be reports, are queued to be read
again: ingest then records which instances are not images."""

from peewee import CharField, DateTimeField, IntegerField, Model, TextField

from .ops import add_missing_columns, utcnow

# Modalities of the series that may hold no image (reports, SR, key objects,
# presentation states): the studies recorded before 0007 with one of them.
MAYBE_NOT_IMAGES = ("DOC", "OT", "SR", "KO", "PR")


class Study(Model):
    orthanc_id = CharField(max_length=44, unique=True)
    modalities = CharField(max_length=255, default="")

    class Meta:
        table_name = "study"


class Resource(Model):
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
    with db.bind_ctx([Study, Resource, IngestQueue]):
        if not add_missing_columns(db, Resource, "content"):
            return  # recorded by an ingest that kept it: nothing to read again
        for study in Study.select(Study.orthanc_id, Study.modalities):
            if set(study.modalities.split("\\")) & set(MAYBE_NOT_IMAGES):
                IngestQueue.insert(orthanc_id=study.orthanc_id).on_conflict_ignore().execute()
