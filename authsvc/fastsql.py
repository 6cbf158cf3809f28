"""The hot statements of the access-decision path, as plain parameterised SQL.

peewee builds SQL on every call, which cost more than running the query on
the decision path (bench B2); these are written once, in SQL, with `{p}` for
each parameter (the database's own placeholder: `database.param`), and read
back into models through peewee's public API only (field.python_value and
the model's constructor). tests/test_fastsql.py checks that the columns they
name are the tables' own, on SQLite and PostgreSQL, so that a schema or
peewee change fails loudly there rather than here.

On PostgreSQL each statement is also prepared on the server, once per
connection: planning the session's five-table join took longer than running
it (about 220 of 360 µs), and a prepared statement is planned once. SQLite's
driver keeps its own cache of prepared statements.

A decision needs two lookups that do not depend on each other: the session
and the study of the resource asked about. `prefetch` runs both as one
statement, and each `fetch_one` on this thread then takes its row from it:
on PostgreSQL a round trip to the server costs more than either lookup."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .db import database

# A row as the driver returns it, and a lookup: a statement with its parameters.
Row = tuple[Any, ...]
Lookup = tuple["Statement", tuple[Any, ...]]

_prefetched = threading.local()


@dataclass(frozen=True)
class Statement:
    """One hot statement: `sql` with `{p}` for each parameter, returning
    `width` columns (the first of them its table's key: NULL, no row)."""

    name: str
    sql: str
    width: int

    def text(self) -> str:
        # Formatted once per placeholder style: it was 2 % of a decision's CPU.
        key = (self.sql, database.param)
        text = _texts.get(key)
        if text is None:
            text = _texts[key] = self.sql.format(p=database.param)
        return text


_texts: dict[tuple[str, str], str] = {}


def columns(
    model: Any, fields: Sequence[Any] | None = None, alias: str | None = None
) -> tuple[str, int]:
    """The quoted column list of these fields (default: all the model's,
    in its order) and how many there are."""
    fields = fields or model._meta.sorted_fields
    table = alias or model._meta.table_name
    return ", ".join(f'"{table}"."{f.column_name}"' for f in fields), len(fields)


def table(model: Any, alias: str | None = None) -> str:
    name = f'"{model._meta.table_name}"'
    return f'{name} AS "{alias}"' if alias else name


def row_object(model: Any, values: Sequence[Any], fields: Sequence[Any] | None = None) -> Any:
    """A model instance from a row slice in the order of `fields` (default:
    all of them, the primary key first); None when the key is NULL (no row
    found by a LEFT JOIN). Built as any model is, by its constructor (peewee's
    public API: its own row builder's `__no_default__` is not)."""
    fields = fields or model._meta.sorted_fields
    if values[0] is None:
        return None
    return model(**{f.name: f.python_value(v) for f, v in zip(fields, values, strict=False)})


def fetch_one(statement: Statement, *params: Any) -> Row | None:
    rows = getattr(_prefetched, "rows", None)
    if rows and (statement.name, params) in rows:
        return rows.pop((statement.name, params))
    return _execute(statement.name, statement.text(), params).fetchone()


def fetch_all(statement: Statement, *params: Any) -> list[Row]:
    """Every row of a statement (not prefetched: its rows are many)."""
    return _execute(statement.name, statement.text(), params).fetchall()


_combined: dict[tuple[str, str], str] = {}


def prefetch(lookups: Iterable[Lookup | None]) -> None:
    """Run the lookups [(statement, params)] (None entries skipped) as one
    statement, for the next `fetch_one` of each on this thread."""
    present = [lookup for lookup in lookups if lookup is not None]
    forget_prefetched()
    if len(present) < 2:
        return
    name = "+".join(statement.name for statement, _ in present)
    key = (database.param, name)
    if key not in _combined:
        _combined[key] = "SELECT * FROM (SELECT 1 AS _one) AS _p" + "".join(
            f" LEFT JOIN ({statement.text()}) AS _p{n} ON 1 = 1"
            for n, (statement, _) in enumerate(present)
        )
    params = tuple(p for _, args in present for p in args)
    row = _execute(name, _combined[key], params).fetchone()
    rows: dict[tuple[str, tuple[Any, ...]], Row | None] = {}
    at = 1
    for statement, args in present:
        part = row[at : at + statement.width]
        rows[(statement.name, tuple(args))] = part if part[0] is not None else None
        at += statement.width
    _prefetched.rows = rows


def remember(statement: Statement, params: Sequence[Any], row: Row | None) -> None:
    """`row` is what `statement` would answer for `params` now (read by
    another statement of this decision): the next fetch_one of it on this
    thread takes it instead of asking the database."""
    rows = getattr(_prefetched, "rows", None)
    if rows is None:
        rows = _prefetched.rows = {}
    rows[(statement.name, tuple(params))] = row


def forget_prefetched() -> None:
    """Rows prefetched and not used: gone (called after each decision)."""
    _prefetched.rows = None


def _execute(name: str, sql: str, params: Sequence[Any]) -> Any:
    """The cursor of one statement, prepared on PostgreSQL's server."""
    conn = database.connection()
    # False: SQLite (no server to prepare on); None: none prepared yet.
    prepared: Any = getattr(conn, "prepared", False)  # set[str] | Literal[False] | None
    if prepared is False or "%%" in sql:  # SQLite, or a query with a literal %
        return database.execute_sql(sql, params)
    if prepared is None:
        prepared = conn.prepared = set()
    # The statement's server-side name and its EXECUTE, made once per name
    # and parameter count (building them was 1 % of a decision's CPU).
    names = _executes.get((name, len(params)))
    if names is None:
        statement = "authsvc_" + re.sub(r"[^a-z0-9]", "_", name)
        execute = (
            f"EXECUTE {statement} ({', '.join(['%s'] * len(params))})"
            if params
            else f"EXECUTE {statement}"
        )
        names = _executes[(name, len(params))] = (statement, execute)
    statement, execute = names
    if statement not in prepared:
        numbered = iter(range(1, sql.count("%s") + 1))
        database.execute_sql(
            f"PREPARE {statement} AS " + re.sub(r"%s", lambda _: f"${next(numbered)}", sql)
        )
        prepared.add(statement)
    return database.execute_sql(execute, params)


_executes: dict[tuple[str, int], tuple[str, str]] = {}
