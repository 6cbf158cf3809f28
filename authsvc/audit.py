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

import logging
import time
from contextlib import contextmanager

from peewee import SqliteDatabase

from .auditchain import MARKER_EVENT, is_keyed, keyed_digest, legacy_last
from .db import database
from .models import AuditEvent, StudyAccess, utcnow

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


def record(event, actor="", subject="", address="", detail=""):
    """Append one entry. Never raises into the caller's request: an audit
    failure is logged loudly instead (the action itself already happened)."""
    if event not in EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    try:
        with _appending():
            last = AuditEvent.select(AuditEvent.chain).order_by(AuditEvent.id.desc()).first()
            prev = last.chain if last else ""
            if last and not is_keyed(prev):
                # The first entry after the legacy (unkeyed) ones: the marker
                # of the switch point, keyed, comes first (see auditchain).
                prev = _append(prev, MARKER_EVENT, "", "", "", str(legacy_last()))
            _append(prev, event, actor, subject, address, detail)
    except Exception:
        log.exception("could not write the audit log entry %s", event)


def _append(prev, event, actor, subject, address, detail):
    at = utcnow()
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


# (principal, study, hour) already recorded by this process: decisions come by
# the hundred per viewer, and each would otherwise try a database write.
_seen = set()


def record_study_access(principal, study, address=""):
    """At most one entry per principal, study and hour."""
    hour = time.strftime("%Y-%m-%dT%H", time.gmtime())
    who = principal.audit_name
    key = (who, study.orthanc_id, hour)
    if key in _seen:
        return
    if len(_seen) > 10000:
        _seen.clear()
    _seen.add(key)
    # Another worker may have recorded it already: no error, no rollback.
    inserted = (
        StudyAccess.insert(principal=who, study=study.orthanc_id, hour=hour)
        .on_conflict_ignore()
        .as_rowcount()
        .execute()
    )
    if not inserted:
        return
    record(
        "study_access",
        actor=who,
        subject=study.orthanc_id,
        address=address,
        detail=f"patient {study.patient_id}",
    )
