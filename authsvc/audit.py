"""The audit log: who logged in (or failed to) from where, which passwords
were issued, printed or reissued, rule changes, shares created and revoked,
which study each principal opened (one entry per principal, study and
hour, not one per image), studies held back as identity conflicts and how
admins resolved them, and the report PDFs staff attached to studies.

Entries are only ever appended; no route of the service changes or deletes
them. Each entry carries an HMAC of its content and of the previous entry's,
under a key the database does not hold, and the chain's head is checkpointed
outside the database (authsvc/auditchain.py), so that an entry altered,
rewritten with the following ones recomputed, or removed shows, and
`auditchain.verify()` says what and where. Nothing secret is written here:
no password, no token, no share secret.
"""

import atexit
import logging
import time
from contextlib import contextmanager

from peewee import SqliteDatabase

from .auditchain import MARKER_EVENT, is_keyed, keyed_digest, legacy_last
from .db import database
from .models import AuditEvent, StudyAccess, utcnow
from .offpath import OffPathWriter

log = logging.getLogger(__name__)

EVENTS = (
    "login",
    "login_failed",
    "login_throttled",
    "logout",
    "password_issued",
    "password_printed",
    "rules_changed",
    "rules_rejected",
    "share_created",
    "share_revoked",
    "study_access",
    "identity_conflict",
    "identity_resolved",
    "report_attached",
    MARKER_EVENT,
)


# Any constant: the PostgreSQL advisory lock that makes appends take turns.
_APPEND_LOCK = 0x617564_6974


@contextmanager
def _appending():
    """A transaction in which appends take turns, across gunicorn's workers:
    each entry hashes the one before it, so two appends reading the same
    last entry would fork the chain. SQLite: BEGIN IMMEDIATE takes the write
    lock before that read (a deferred transaction that read first could not
    write once another had, and the entry was lost). PostgreSQL: an advisory
    lock held until commit."""
    if isinstance(database.obj, SqliteDatabase):
        with database.atomic("IMMEDIATE"):
            yield
    else:
        with database.atomic():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_APPEND_LOCK,))
            yield


def record(event, actor="", subject="", address="", detail="", at=None):
    """Append one entry (`at`: when it happened, default now). Never raises
    into the caller's request: an audit failure is logged loudly instead
    (the action itself already happened)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    try:
        _record(event, actor, subject, address, detail, at)
    except Exception:
        log.exception("could not write the audit log entry %s", event)


def _record(event, actor, subject, address, detail, at=None):
    with _appending():
        _append(_chain_head(), event, actor, subject, address, detail, at)


def _chain_head():
    """The chain value the next entry follows (inside _appending)."""
    last = AuditEvent.select(AuditEvent.chain).order_by(AuditEvent.id.desc()).first()
    prev = last.chain if last else ""
    if last and not is_keyed(prev):
        # The first entry after the legacy (unkeyed) ones: the marker
        # of the switch point, keyed, comes first (see auditchain).
        prev = _append(prev, MARKER_EVENT, "", "", "", str(legacy_last()))
    return prev


def _append(prev, event, actor, subject, address, detail, at=None):
    at = at or utcnow()
    values = (str(actor)[:120], str(subject)[:120], str(address)[:64], str(detail)[:500])
    chain = keyed_digest(prev, at, event, *values)
    AuditEvent.create(
        at=at,
        event=event,
        actor=values[0],
        subject=values[1],
        address=values[2],
        detail=values[3],
        chain=chain,
    )
    return chain


# (principal, study, hour) already recorded or noted by this process:
# decisions come by the hundred per viewer, and each would otherwise try a
# database write.
_seen = set()


def _this_hour():
    """The hour's key ("2026-12-08T05", UTC), formatted once an hour: every
    decision asks (strftime was 1.5 % of a decision's CPU)."""
    global _hour
    number = int(time.time() // 3600)
    if _hour[0] != number:
        _hour = (number, time.strftime("%Y-%m-%dT%H", time.gmtime(number * 3600)))
    return _hour[1]


_hour = (None, "")


def _first_this_hour(principal, study):
    """The (who, study, hour) key when this process has not had it yet."""
    hour = _this_hour()
    key = (principal.audit_name, study.orthanc_id, hour)
    if key in _seen:
        return None
    if len(_seen) > 10000:
        _seen.clear()
    _seen.add(key)
    return key


def record_study_access(principal, study, address=""):
    """At most one entry per principal, study and hour, written now (a page
    the principal opened)."""
    key = _first_this_hour(principal, study)
    if key is not None:
        _write_access(key, study.patient_id, address, None)


def note_study_access(principal, study, address=""):
    """The same, for a decision: noted, and written by this process's own
    thread a moment later (authsvc/offpath.py), so that the decision never
    waits for the audit log's lock."""
    key = _first_this_hour(principal, study)
    if key is not None:
        access_notes.note(key, (study.patient_id, address, utcnow()))


def _write_access(key, patient_id, address, at):
    """The StudyAccess row (another worker may have it already: then
    nothing) and its audit entry; a failure is logged (record)."""
    if _insert_access(key):
        record("study_access", key[0], key[1], address, f"patient {patient_id}", at)


def _already_recorded(keys):
    """Which of these (who, study, hour) keys have their row already: one
    read per hour and 200 keys, however many keys. It names principals,
    studies and the hour, so that the unique index on (principal, study,
    hour) answers it: by hour and study alone it read the whole table,
    which grows every hour."""
    found = set()
    by_hour = {}
    for key in keys:
        by_hour.setdefault(key[2], []).append(key)
    for hour, hour_keys in by_hour.items():
        hour_keys.sort()
        for at in range(0, len(hour_keys), 200):  # within SQLite's limit on parameters
            chunk = hour_keys[at : at + 200]
            rows = (
                StudyAccess.select(StudyAccess.principal, StudyAccess.study)
                .where(
                    StudyAccess.principal.in_(sorted({who for who, _, _ in chunk}))
                    & StudyAccess.study.in_(sorted({study for _, study, _ in chunk}))
                    & (StudyAccess.hour == hour)
                )
                .tuples()
            )
            found.update((who, study_id, hour) for who, study_id in rows)
    return found & set(keys)


def _insert_access(key):
    who, study_id, hour = key
    return (
        StudyAccess.insert(principal=who, study=study_id, hour=hour)
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
    )


# Entries of study_access appended per transaction at most (see write below).
APPEND_BATCH = 100


class StudyAccessNotes(OffPathWriter):
    """Decisions' study_access entries, written at once by a thread (eager):
    they reach the log within moments, in the order they were noted, each
    dated when its decision was made."""

    name = "study access entries"

    def merge(self, old, new):
        return old  # the first decision of the hour is the one recorded

    def write(self, pending):
        # Another worker has usually written most of them already (each
        # worker meets a viewer's studies anew): found in one read, they
        # cost no write and no wait for the write lock.
        for key in _already_recorded(pending):
            del pending[key]
        if not pending:
            return
        # Many in one transaction, under the chain's lock once: a commit per
        # entry (a flush of the WAL, with the lock held) made the appends
        # take turns at about 1.7 ms each on PostgreSQL (B2's
        # pg_stat_statements). But at most APPEND_BATCH of them: a backlog
        # of thousands in one transaction held the lock for 388 ms on
        # average, and a login's entry waited behind it. A batch that fails
        # rolls back and raises: its notes and the later ones stay in
        # `pending` for the next try; the batches before it are written.
        ordered = sorted(pending.items(), key=lambda kv: kv[1][2])
        for start in range(0, len(ordered), APPEND_BATCH):
            batch = ordered[start : start + APPEND_BATCH]
            with _appending():
                prev = _chain_head()
                for (who, study_id, hour), (patient_id, address, at) in batch:
                    if _insert_access((who, study_id, hour)):
                        prev = _append(
                            prev,
                            "study_access",
                            who,
                            study_id,
                            address,
                            f"patient {patient_id}",
                            at,
                        )
            for key, _ in batch:
                del pending[key]


access_notes = StudyAccessNotes(flush_seconds=1.0, eager=True)
# A worker that exits normally writes what it noted (gunicorn_conf's
# worker_exit does too, before the chain's head is checkpointed).
atexit.register(access_notes.flush)
