"""Numbered schema migrations, applied in order by `authsvc migrate` before the
server starts (never at import or on a request)."""

from .db import database
from . import models


def _0001_initial(db):
    db.create_tables([m for m in models.ALL_MODELS if m is not models.SchemaVersion])


MIGRATIONS = [
    (1, _0001_initial),
]


def applied_versions():
    return {row.version for row in models.SchemaVersion.select()}


def migrate():
    """Apply every migration not yet applied; returns the versions applied."""
    db = database.obj
    db.create_tables([models.SchemaVersion])
    done = applied_versions()
    applied = []
    for version, step in MIGRATIONS:
        if version in done:
            continue
        with db.atomic():
            step(db)
            models.SchemaVersion.create(version=version)
        applied.append(version)
    return applied
