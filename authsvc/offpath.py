"""Writes the decision path notes and does not wait for (authsvc/lastseen.py:
sessions' last use; authsvc/audit.py: who opened which study).

A decision answers a viewer's every image, and nginx's check gives it 1 s:
one that waited for a database another writer held (a big study being
recorded, a backup, another decision's audit entry) was refused, and the
image with it. So the decision only notes what is to be written, in memory;
a thread of the same process writes the notes, every `flush_seconds` or at
once when `eager`, in one transaction, and again when the process exits. A
note that cannot be written is kept for the next flush; a worker killed
outright loses the notes it had not written yet.

Subclasses say how a note merges with one of the same key (`merge`) and how
a batch is written (`write`, inside a transaction)."""

import logging
import os
import threading
import time

from .db import database

log = logging.getLogger(__name__)

# An eager writer, woken by a note, waits this long for the notes of the same
# moment before it writes.
COALESCE_SECONDS = 0.05


class OffPathWriter:
    name = "notes"

    def __init__(self, flush_seconds, eager=False):
        self.flush_seconds = flush_seconds
        self.eager = eager  # wake the thread at each note, not only every flush_seconds
        self._pending = {}
        self._lock = threading.Lock()  # the notes
        self._flushing = threading.Lock()  # one flush at a time: flush() returns once written
        self._wake = threading.Event()
        self._thread = None
        self._pid = None
        self._database = None  # the database the notes belong to
        self._connected = None  # the database the thread's connection is open on

    def merge(self, old, new):
        return new

    def paused(self):
        """Held: no flush runs (a test looks at the database in between)."""
        return self._flushing

    def write(self, pending):
        raise NotImplementedError

    def note(self, key, value):
        """Remember `value` under `key` for the next write (no database work)."""
        with self._lock:
            self._database = database.obj
            old = self._pending.get(key)
            self._pending[key] = value if old is None else self.merge(old, value)
            self._start()
        if self.eager:
            self._wake.set()

    def _start(self):
        # Started lazily, in the process that notes: gunicorn forks its
        # workers after the app is built, and threads do not survive a fork.
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=f"authsvc-{self.name}", daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            if self._wake.wait(self.flush_seconds) and self.eager:
                # Woken by a note: the others of the same moment (a viewer's
                # first requests, on several studies) go in the same flush.
                time.sleep(COALESCE_SECONDS)
            self._wake.clear()
            self.flush()

    def _write_connected(self, pending):
        """`write`, on a connection: the thread's own, kept open between
        flushes (opening a SQLite connection costs its pragmas, and B2's
        first rounds, where each worker meets studies anew, flushed once per
        note); any other caller's (a test, the process's exit) is opened
        for this flush only."""
        if threading.current_thread() is not self._thread:
            with database.connection_context():
                self.write(pending)
            return
        db = database.obj
        if self._connected is not None and self._connected is not db:
            self._close(self._connected)  # a database of an app gone (a test's)
        self._connected = db
        try:
            db.connect(reuse_if_open=True)
            self.write(pending)
        except Exception:
            self._close(db)  # a broken connection is not kept for the next try
            self._connected = None
            raise

    @staticmethod
    def _close(db):
        try:
            db.close()
        except Exception as exc:  # already gone; nothing to hand back
            log.debug("closing the writer's connection: %s", exc)

    def flush(self):
        """Write every note taken so far (`write` decides in how many
        transactions); how many. The notes a failed write left in
        `pending` are kept for the next flush."""
        with self._flushing:
            with self._lock:
                pending, self._pending = self._pending, {}
                target = self._database
            # The app (and its database) changed since the notes were taken (a
            # test suite building a new app per test): they are the old one's.
            if not pending or target is None or database.obj is not target:
                return 0
            count = len(pending)  # (write may take the written ones out of `pending`)
            try:
                self._write_connected(pending)
            except Exception as exc:
                log.warning(
                    "could not write %d %s (kept for the next try): %s",
                    len(pending),
                    self.name,
                    exc,
                )
                with self._lock:
                    for key, value in pending.items():
                        old = self._pending.get(key)
                        self._pending[key] = value if old is None else self.merge(value, old)
                return count - len(pending)  # those a batch before the failure wrote
            return count
