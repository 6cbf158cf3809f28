"""Hot queries compiled once: peewee builds SQL on every call, which cost
more than running the query on the access-decision path (bench B2)."""

from .db import database

_compiled = {}


def compiled(name, build):
    """The SQL of `build()` (a peewee query whose parameters are placeholders),
    compiled once per database (SQLite and PostgreSQL differ)."""
    key = (id(database.obj), name)
    if key not in _compiled:
        _compiled[key] = build().sql()[0]
    return _compiled[key]


def fetch_one(name, build, *params):
    return database.execute_sql(compiled(name, build), params).fetchone()


def instance(model, values):
    """A model instance from a row slice in `sorted_fields` order; None when
    the primary key is NULL (nothing found by a LEFT JOIN)."""
    fields = model._meta.sorted_fields
    if values[0] is None:
        return None
    return model(**{f.name: f.python_value(v) for f, v in zip(fields, values)})
