"""Sessions' last_seen, written off the request path.

A session's last_seen is moved forward at most once a minute (sessions.py,
TOUCH_EVERY), and that write used to happen inside the decision that noticed
it: after a pause, hundreds of sessions fell due in the same seconds and
every one of those decisions waited for a write (a tenth of B2's rate in
that window). Now the decision only notes the time in memory; a thread of
the same process writes what was noted every FLUSH_SECONDS, all in one
transaction, and again when the process exits (authsvc/offpath.py).

What this changes: a session's last_seen reaches the database up to
FLUSH_SECONDS later, so an idle session may end up to that much earlier than
its idle limit says, never later (a write never moves last_seen past the
moment it was noted). A worker killed outright loses its last few seconds of
notes the same way.
"""

import atexit

from . import fastsql
from .db import database
from .models import Session
from .offpath import OffPathWriter

FLUSH_SECONDS = 5.0


class LastSeen(OffPathWriter):
    name = "sessions' last use"

    def __init__(self, flush_seconds=FLUSH_SECONDS):
        super().__init__(flush_seconds)

    def merge(self, old, new):
        return max(old, new)

    def write(self, pending):
        # One statement, a row of parameters per session (the driver's
        # executemany): after a pause hundreds fall due together, and a query
        # built by peewee for each held the worker's GIL while its decisions
        # waited. `last_seen < when`: another worker may have written a later
        # use; a write never moves it back.
        p, column, key = database.param, Session.last_seen, Session.id
        sql = (
            f'UPDATE {fastsql.table(Session)} SET "{column.column_name}" = {p} '
            f'WHERE "{key.column_name}" = {p} AND "{column.column_name}" < {p}'
        )
        rows = [
            (column.db_value(when), key.db_value(session_id), column.db_value(when))
            for session_id, when in sorted(pending.items())
        ]
        with database.atomic():
            database.cursor().executemany(sql, rows)


notes = LastSeen()
# A worker that exits normally (gunicorn's graceful stop, a restart after
# max_requests) writes what it noted.
atexit.register(notes.flush)
