"""What the migrations share: a clock and two idempotent schema steps.

Frozen like the migrations themselves: an old migration calls these, so a
change here would change what it does to a database. Add a new function
instead of changing one."""

import datetime

from playhouse.migrate import SchemaMigrator
from playhouse.migrate import migrate as run_operations


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def column_names(db, table):
    return {c.name for c in db.get_columns(table)}


def add_missing_columns(db, model, *field_names):
    """Add the fields of `model` (a migration's own frozen model) that its
    table lacks, as peewee's migrator adds them: a column that is not null
    is added null, filled with its default and then made not null; an index
    or unique field gets its index under peewee's own name (table_column),
    the name create_tables gives it. Columns the table has are skipped: a
    database whose first migration was run from newer models has them.
    Returns the columns added."""
    table = model._meta.table_name
    existing = column_names(db, table)
    migrator = SchemaMigrator.from_database(db)
    added = [
        model._meta.fields[name]
        for name in field_names
        if model._meta.fields[name].column_name not in existing
    ]
    run_operations(*[migrator.add_column(table, f.column_name, f) for f in added])
    return [f.column_name for f in added]


def ensure_index(db, table, name, columns, unique=False):
    """An index under an explicit name (the one peewee's create_tables gives
    it, so that a database that already has it keeps exactly one)."""
    quoted = ", ".join(f'"{c}"' for c in columns)
    kind = "UNIQUE INDEX" if unique else "INDEX"
    db.execute_sql(f'CREATE {kind} IF NOT EXISTS "{name}" ON "{table}" ({quoted})')
