"""Numbered schema migrations, applied in order by `authsvc migrate` before the
server starts (never at import or on a request)."""

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_operations

from . import models
from .db import database

# How migrations are written here: 0001 creates every table from the current
# models (a fresh database gets the newest schema at once), so each later
# migration must be idempotent: create tables with safe=True, and add columns
# with `add_missing_columns`, which skips those that already exist.


def add_missing_columns(db, model, *field_names):
    """Add the model's fields that the table lacks (no-op on a fresh database)."""
    table = model._meta.table_name
    existing = {c.name for c in db.get_columns(table)}
    migrator = SchemaMigrator.from_database(db)
    ops = [
        migrator.add_column(table, model._meta.fields[name].column_name, model._meta.fields[name])
        for name in field_names
        if model._meta.fields[name].column_name not in existing
    ]
    if ops:
        run_operations(*ops)


def _0001_initial(db):
    db.create_tables([m for m in models.ALL_MODELS if m is not models.SchemaVersion], safe=True)


def _0002_slip_display_copy(db):
    """The encrypted display copy of a new password, and the slip's state."""
    add_missing_columns(db, models.Patient, "display_password", "slip_printed_at", "slip_language")


def _0003_rules_and_shares(db):
    db.create_tables(
        [models.StudyTag, models.RuleLogin, models.Rule, models.RuleMatch, models.Share], safe=True
    )
    add_missing_columns(db, models.Session, "rule_login", "share")


def _0004_throttle_and_audit(db):
    db.create_tables([models.LoginFailure, models.AuditEvent, models.StudyAccess], safe=True)


def _0005_study_patient_name(db):
    """Each study's own PatientName; studies recorded before get their
    login's (the first study's), the best known."""
    add_missing_columns(db, models.Study, "patient_name")
    study, patient = models.Study, models.Patient
    (
        study.update(patient_name=patient.select(patient.name).where(patient.id == study.patient))
        .where(study.patient_name == "")
        .execute()
    )


def _0006_identity_conflicts(db):
    """The studies held back as identity conflicts (authsvc/conflicts.py)."""
    db.create_tables([models.IdentityConflict], safe=True)


# Modalities of the series that may hold no image (reports, SR, key objects,
# presentation states): the studies recorded before 0007 with one of them.
MAYBE_NOT_IMAGES = ("DOC", "OT", "SR", "KO", "PR")


def _0007_resource_content(db):
    """What an instance holds when it is not an image (a PDF report...).
    Studies recorded before, whose modalities may be reports, are queued to
    be read again: ingest then records which instances are not images."""
    existing = {c.name for c in db.get_columns(models.Resource._meta.table_name)}
    add_missing_columns(db, models.Resource, "content")
    if "content" in existing:
        return
    for study in models.Study.select(models.Study.orthanc_id, models.Study.modalities):
        if set(study.modalities.split("\\")) & set(MAYBE_NOT_IMAGES):
            (models.IngestQueue.insert(orthanc_id=study.orthanc_id).on_conflict_ignore().execute())


def _0008_audit_keyed(db):
    """The audit log becomes keyed (authsvc/auditchain.py): the entries
    written so far keep their plain SHA-256, up to this recorded switch
    point; every later one is an HMAC under the audit key. The first keyed
    entry is the switch point's marker; `flask migrate` checkpoints it."""
    last = (
        models.AuditEvent.select(models.AuditEvent.id).order_by(models.AuditEvent.id.desc()).first()
    )
    if models.get_value("audit_legacy_last") is None:
        models.set_value("audit_legacy_last", last.id if last else 0)


def _0009_share_last_used(db):
    """When each share's link was last used (the shares lists say it)."""
    add_missing_columns(db, models.Share, "last_used_at")


def _0010_audit_index_and_text_reports(db):
    """The index a patient's access log reads by (authsvc/access_log.py);
    and the studies with an instance recorded as "other" are read again:
    structured reports among them are now "sr", shown as text."""
    models.AuditEvent._schema.create_indexes(safe=True)
    resource = models.Resource
    for study in (
        models.Study.select(models.Study.orthanc_id)
        .join(resource)
        .where(resource.content == "other")
        .distinct()
    ):
        models.IngestQueue.insert(orthanc_id=study.orthanc_id).on_conflict_ignore().execute()


MIGRATIONS = [
    (1, _0001_initial),
    (2, _0002_slip_display_copy),
    (3, _0003_rules_and_shares),
    (4, _0004_throttle_and_audit),
    (5, _0005_study_patient_name),
    (6, _0006_identity_conflicts),
    (7, _0007_resource_content),
    (8, _0008_audit_keyed),
    (9, _0009_share_last_used),
    (10, _0010_audit_index_and_text_reports),
]


def applied_versions():
    return {row.version for row in models.SchemaVersion.select()}


def migrate():
    """Apply every migration not yet applied; returns the versions applied."""
    db = database.obj
    db.create_tables([models.SchemaVersion])
    done = applied_versions()
    applied = []
    for version, step in sorted(MIGRATIONS, key=lambda m: m[0]):
        if version in done:
            continue
        with db.atomic():
            step(db)
            models.SchemaVersion.create(version=version)
        applied.append(version)
    return applied
