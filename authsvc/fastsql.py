"""Hot queries compiled once: peewee builds SQL on every call, which cost
more than running the query on the access-decision path (bench B2).

On PostgreSQL each is also prepared on the server, once per connection:
planning the session's five-table join took longer than running it (about
220 of 360 µs), and a prepared statement is planned once. SQLite's driver
keeps its own cache of prepared statements."""

import re

from .db import database

_compiled = {}
_PLACEHOLDER = re.compile(r"%s")


def compiled(name, build):
    """The SQL of `build()` (a peewee query whose parameters are all "?"
    placeholders: no other constant, since only the SQL is kept), compiled
    once per database (SQLite and PostgreSQL differ)."""
    key = (id(database.obj), name)
    if key not in _compiled:
        sql, params = build().sql()
        if any(p != "?" for p in params):
            raise ValueError(f"{name}: a compiled query takes only placeholders")
        _compiled[key] = sql
    return _compiled[key]


def fetch_one(name, build, *params):
    sql = compiled(name, build)
    conn = database.connection()
    prepared = getattr(conn, "prepared", False)
    if prepared is False or "%%" in sql:  # SQLite, or a query with a literal %
        return database.execute_sql(sql, params).fetchone()
    if prepared is None:
        prepared = conn.prepared = set()
    statement = "authsvc_" + name.replace("-", "_")
    if statement not in prepared:
        numbered = iter(range(1, sql.count("%s") + 1))
        database.execute_sql(f"PREPARE {statement} AS "
                             + _PLACEHOLDER.sub(lambda _: f"${next(numbered)}", sql))
        prepared.add(statement)
    return database.execute_sql(f"EXECUTE {statement} ({', '.join(['%s'] * len(params))})"
                                if params else f"EXECUTE {statement}", params).fetchone()


def instance(model, values, fields=None):
    """A model instance from a row slice in the order of `fields` (default:
    all of them, `sorted_fields`; the primary key first); None when the
    primary key is NULL (nothing found by a LEFT JOIN). Fields not read are
    None on the instance."""
    fields = fields or model._meta.sorted_fields
    if values[0] is None:
        return None
    # As peewee builds a row read from the database: no defaults computed
    # (some call utcnow), nothing left marked dirty.
    obj = model(__no_default__=1, **{f.name: f.python_value(v) for f, v in zip(fields, values)})
    obj._dirty.clear()
    return obj
