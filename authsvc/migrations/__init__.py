"""Numbered schema migrations, applied in order by `authsvc migrate` (`flask
--app authsvc migrate`, run by `make run`, `make install` and the docker
entrypoint) before the server starts: never at import or on a request.

Every database, new or old, goes through the same steps: 0001 makes the
first schema, each later one adds its own tables and columns. A new
database therefore ends up with the schema an upgraded one has, and
tests/test_migrations.py checks that both equal what authsvc/models.py
declares (tables, columns, types, null, indexes, foreign keys), on SQLite and
PostgreSQL.

Writing a migration, when a model in authsvc/models.py changes:

1. Add `mNNNN_what_it_does.py` here, NNNN the next number, with
   `apply(db)`, and list it in MIGRATIONS below.
2. It is frozen: it declares its own peewee models, with only the tables and
   columns it needs as they are at that version (an explicit `table_name`;
   a referenced table may be a model with no fields), binds them to the
   database it is given (`db.bind_ctx`), and never imports authsvc.models or
   other application code: the models change later, the migration must not.
   Copy what it needs (a function that computes a value, a constant).
3. Columns: `ops.add_missing_columns(db, Model, "field", ...)`; tables:
   `db.create_tables([...], safe=True)`; an index on existing columns:
   `ops.ensure_index` with peewee's own name for it (`table_col1_col2`,
   what create_tables names it), so that a database never gets a second copy.
   Each skips what is already there: databases made before the migrations
   were frozen ran their first migration from the models of their day.
4. Data it changes (backfilling a new column, queueing studies to be read
   again) it changes with its own models, in the same step.
5. Never edit a migration a release has shipped: databases have applied it;
   fix the schema with a new one. The helpers in ops.py are frozen too.
6. A test that fails without it: tests/test_migrations.py compares the
   migrated schema with models.py (a column added to a model without a
   migration fails it), and upgrades the SQL dumps of older databases kept
   in tests/fixtures/; add a test of the data the migration changes.

Each migration runs in a transaction of its own, recorded in schemaversion in
that same transaction: one that fails leaves the database as the previous
one left it, and the next `migrate` runs it again. On SQLite the foreign keys
are not enforced during a migration (the pragma only changes outside a
transaction): adding a NOT NULL column rebuilds the table, and dropping the
old copy with them enforced would delete, by ON DELETE CASCADE, every row
that refers to it (a patient's studies, a study's resources and shares).
`PRAGMA foreign_key_check` must find nothing before the migration commits.
"""

from contextlib import contextmanager

from peewee import DateTimeField, IntegerField, Model, SqliteDatabase

from ..db import database
from . import (
    m0001_initial,
    m0002_slip_display_copy,
    m0003_rules_and_shares,
    m0004_throttle_and_audit,
    m0005_study_patient_name,
    m0006_identity_conflicts,
    m0007_resource_content,
    m0008_audit_keyed,
    m0009_share_last_used,
    m0010_audit_index_and_text_reports,
)
from .ops import utcnow

MIGRATIONS = [
    (1, m0001_initial.apply),
    (2, m0002_slip_display_copy.apply),
    (3, m0003_rules_and_shares.apply),
    (4, m0004_throttle_and_audit.apply),
    (5, m0005_study_patient_name.apply),
    (6, m0006_identity_conflicts.apply),
    (7, m0007_resource_content.apply),
    (8, m0008_audit_keyed.apply),
    (9, m0009_share_last_used.apply),
    (10, m0010_audit_index_and_text_reports.apply),
]


class MigrationError(RuntimeError):
    pass


class SchemaVersion(Model):
    """The versions applied (the runner's own copy of the table: frozen)."""

    version = IntegerField(unique=True)
    applied_at = DateTimeField(default=utcnow)

    class Meta:
        database = database
        table_name = "schemaversion"


def applied_versions():
    return {row.version for row in SchemaVersion.select(SchemaVersion.version)}


@contextmanager
def _transaction(db):
    """One migration's transaction (see the module's docstring)."""
    if not isinstance(db, SqliteDatabase):
        with db.atomic():
            yield
        return
    enforced = db.pragma("foreign_keys")
    db.pragma("foreign_keys", 0)
    try:
        if db.pragma("foreign_keys"):
            raise MigrationError(
                "migrations must run outside a transaction: SQLite would keep enforcing "
                "foreign keys, and rebuilding a table would delete the rows referring to it"
            )
        with db.atomic("IMMEDIATE"):
            yield
            broken = db.execute_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise MigrationError(f"foreign keys broken by the migration: {broken[:5]}")
    finally:
        if enforced:
            db.pragma("foreign_keys", 1)


def migrate(upto=None):
    """Apply, in order, every migration not yet applied (up to version `upto`
    if given: tests build an older database with it); returns the versions
    applied."""
    db = database.obj
    db.create_tables([SchemaVersion], safe=True)
    done = applied_versions()
    applied = []
    for version, step in sorted(MIGRATIONS, key=lambda m: m[0]):
        if version in done or (upto is not None and version > upto):
            continue
        with _transaction(db):
            step(db)
            SchemaVersion.create(version=version)
        applied.append(version)
    return applied
