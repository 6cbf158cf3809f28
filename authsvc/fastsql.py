"""Hot queries compiled once: peewee builds SQL on every call, which cost
more than running the query on the access-decision path (bench B2).

On PostgreSQL each is also prepared on the server, once per connection:
planning the session's five-table join took longer than running it (about
220 of 360 µs), and a prepared statement is planned once. SQLite's driver
keeps its own cache of prepared statements.

A decision needs two lookups that do not depend on each other: the session
and the study of the resource asked about. `prefetch` runs both as one
statement, and each `fetch_one` on this thread then takes its row from it:
on PostgreSQL a round trip to the server costs more than either lookup."""

import re
import threading

from peewee import __exception_wrapper__

from .db import database

_compiled = {}
_PLACEHOLDER = re.compile(r"%s")
_widths = {}        # columns each compiled query returns
_prefetched = threading.local()


def compiled(name, build):
    """The SQL of `build()` (a peewee query whose parameters are all "?"
    placeholders: no other constant, since only the SQL is kept), compiled
    once per database (SQLite and PostgreSQL differ)."""
    key = (id(database.obj), name)
    if key not in _compiled:
        query = build()
        sql, params = query.sql()
        if any(p != "?" for p in params):
            raise ValueError(f"{name}: a compiled query takes only placeholders")
        _compiled[key] = sql
        _widths[key] = len(query._returning)
    return _compiled[key]


def fetch_one(name, build, *params):
    rows = getattr(_prefetched, "rows", None)
    if rows and (name, params) in rows:
        return rows.pop((name, params))
    return _execute_one(name, compiled(name, build), params)


def prefetch(lookups):
    """Run the lookups [(name, build, params)] (None entries skipped) as one
    statement, for the next `fetch_one` of each on this thread. The first
    column of each must be its table's key: NULL there means no row."""
    lookups = [lookup for lookup in lookups if lookup is not None]
    forget_prefetched()
    if len(lookups) < 2:
        return
    parts, params = [], []
    for n, (name, build, args) in enumerate(lookups):
        parts.append(f" LEFT JOIN ({compiled(name, build)}) AS _p{n} ON 1 = 1")
        params.extend(args)
    name = "+".join(name for name, _, _ in lookups)
    key = (id(database.obj), name)
    if key not in _compiled:
        _compiled[key] = "SELECT * FROM (SELECT 1 AS _one) AS _p" + "".join(parts)
    row = _execute_one(name, _compiled[key], tuple(params))
    rows, at = {}, 1
    for name, build, args in lookups:
        width = _widths[(id(database.obj), name)]
        part = row[at:at + width]
        rows[(name, tuple(args))] = part if part[0] is not None else None
        at += width
    _prefetched.rows = rows


def forget_prefetched():
    """Rows prefetched and not used: gone (called after each decision)."""
    _prefetched.rows = None


def _execute_one(name, sql, params):
    conn = database.connection()
    prepared = getattr(conn, "prepared", False)
    if prepared is False or "%%" in sql:  # SQLite, or a query with a literal %
        return database.execute_sql(sql, params).fetchone()
    if prepared is None:
        prepared = conn.prepared = set()
    statement = "authsvc_" + re.sub(r"[^a-z0-9]", "_", name)
    if statement not in prepared:
        numbered = iter(range(1, sql.count("%s") + 1))
        database.execute_sql(f"PREPARE {statement} AS "
                             + _PLACEHOLDER.sub(lambda _: f"${next(numbered)}", sql))
        prepared.add(statement)
    # Straight to psycopg2's cursor (peewee's execute_sql made a cursor and
    # logged each time), its errors still translated into peewee's.
    cursor = conn.cursor()
    with __exception_wrapper__:
        cursor.execute(f"EXECUTE {statement} ({', '.join(['%s'] * len(params))})"
                       if params else f"EXECUTE {statement}", params)
        return cursor.fetchone()


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
