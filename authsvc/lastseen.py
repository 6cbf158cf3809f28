"""Sessions' last_seen, written off the request path.

A session's last_seen is moved forward at most once a minute (sessions.py,
TOUCH_EVERY), and that write used to happen inside the decision that noticed
it: after a pause, hundreds of sessions fell due in the same seconds and
every one of those decisions waited for a write (a tenth of B2's rate in
that window). Now the decision only notes the time in memory; a thread of
the same process writes what was noted every FLUSH_SECONDS, all in one
transaction, and again when the process exits.

What this changes: a session's last_seen reaches the database up to
FLUSH_SECONDS later, so an idle session may end up to that much earlier than
its idle limit says, never later (a write never moves last_seen past the
moment it was noted). A worker killed outright loses its last few seconds of
notes the same way.
"""

import atexit
import logging
import os
import threading

from .db import database
from .models import Session

log = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0


class LastSeen:
    def __init__(self, flush_seconds=FLUSH_SECONDS):
        self.flush_seconds = flush_seconds
        self._pending = {}  # session id -> when it was last seen
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pid = None
        self._database = None  # the database the notes belong to

    def note(self, session_id, when):
        """Remember that this session was used at `when` (no database work)."""
        with self._lock:
            self._database = database.obj
            self._pending[session_id] = max(when, self._pending.get(session_id, when))
            self._start()

    def _start(self):
        # Started lazily, in the process that notes: gunicorn forks its
        # workers after the app is built, and threads do not survive a fork.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name="authsvc-last-seen", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self):
        """Write every note taken so far, in one transaction; a note that
        cannot be written is kept for the next flush."""
        with self._lock:
            pending, self._pending = self._pending, {}
            target = self._database
        # The app (and its database) changed since the notes were taken (a
        # test suite building a new app per test): they are the old one's.
        if not pending or target is None or database.obj is not target:
            return 0
        try:
            with database.connection_context():
                with database.atomic():
                    for session_id, when in sorted(pending.items()):
                        (
                            Session.update(last_seen=when)
                            .where((Session.id == session_id) & (Session.last_seen < when))
                            .execute()
                        )
        except Exception as exc:
            log.warning(
                "could not write %d sessions' last use (kept for the next try): %s",
                len(pending),
                exc,
            )
            with self._lock:
                for session_id, when in pending.items():
                    self._pending[session_id] = max(when, self._pending.get(session_id, when))
            return 0
        return len(pending)


notes = LastSeen()
# A worker that exits normally (gunicorn's graceful stop, a restart after
# max_requests) writes what it noted.
atexit.register(notes.flush)
