"""The audit log's chain, keyed, and its head checkpointed outside the database.

Each entry's `chain` is HMAC-SHA256, under the audit key, of the entry's
content and of the previous entry's `chain`. The key is a secret of the
secrets file (`audit_key`), never in the database: whoever can write the
database but lacks the key can change no entry, even recomputing every
following one, without the change showing.

A chain alone cannot show its newest entries removed (the shorter chain is
whole). So its head (how many entries, the last one's id and MAC) is also
appended, on a schedule and at shutdown, to a checkpoint file outside the
database (mode 0600) and to the service log; each line carries its own MAC,
so lines cannot be forged without the key. `verify()` compares the database
with the newest checkpoint: an entry it named gone or changed is reported.

Entries written before the key existed (migration 8) keep their plain
SHA-256 ("legacy", ids up to the recorded switch point `audit_legacy_last`)
and verify as before. The first keyed entry after them is an `audit_keyed`
marker naming that switch point, keyed and chained to the last legacy hash:
moving the switch point in the database (to pass keyed entries off as
legacy ones, which need no key) leaves no valid marker where it then must
be; and the switch point is in every checkpoint line too.
"""

import base64
import fcntl
import hashlib
import hmac
import json
import logging
import os
import threading
from dataclasses import dataclass, field

from .models import AuditEvent, get_value, utcnow

log = logging.getLogger(__name__)

LEGACY_LAST_KEY = "audit_legacy_last"
MARKER_EVENT = "audit_keyed"
# Keyed chains are written "k1:<base64url>", which no legacy hex digest can
# start with: an append tells the two apart from the previous entry alone.
KEYED_PREFIX = "k1:"


class _Config:
    key = None
    checkpoint_path = None


_config = _Config()


def derive_key(secrets):
    """The audit key: the secrets' `audit_key`, else (older secrets files)
    one derived from `secret_key`, which the database does not hold either;
    `make run` and the docker secrets script make a separate `audit_key`."""
    own = secrets.get("audit_key") or ""
    if len(own) >= 32:
        return own.encode()
    log.warning(
        "no audit_key of 32+ characters in the secrets: the audit log is keyed "
        "with a key derived from secret_key (changing secret_key then breaks "
        "its verification); add an audit_key (see docs/security.md)"
    )
    return hmac.new(secrets["secret_key"].encode(), b"authsvc audit key", hashlib.sha256).digest()


def configure(key, checkpoint_path):
    _config.key = key
    _config.checkpoint_path = checkpoint_path


def _content(prev, at, event, actor, subject, address, detail):
    return json.dumps(
        [prev, at.isoformat(), event, actor, subject, address, detail], ensure_ascii=False
    ).encode()


def legacy_digest(prev, *entry):
    """The chain of entries written before migration 8: SHA-256, no key."""
    return hashlib.sha256(_content(prev, *entry)).hexdigest()


def _mac(label, data):
    if _config.key is None:
        raise RuntimeError("the audit key is not configured (create_app does it)")
    mac = hmac.new(_config.key, label + b"\0" + data, hashlib.sha256).digest()
    return KEYED_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")


def keyed_digest(prev, *entry):
    return _mac(b"entry", _content(prev, *entry))


def is_keyed(chain):
    return chain.startswith(KEYED_PREFIX)


def legacy_last():
    return int(get_value(LEGACY_LAST_KEY, "0") or 0)


# -- checkpoints ------------------------------------------------------------------


def _checkpoint_mac(fields):
    return _mac(b"checkpoint", json.dumps(fields, sort_keys=True).encode())


def _head():
    last = AuditEvent.select(AuditEvent.id, AuditEvent.chain).order_by(AuditEvent.id.desc()).first()
    return {
        "entries": AuditEvent.select().count(),
        "last_id": last.id if last else 0,
        "last_mac": last.chain if last else "",
        "legacy_last": legacy_last(),
    }


def read_checkpoints(path=None):
    """(valid lines as dicts, number of lines whose MAC is wrong or unreadable)."""
    path = path or _config.checkpoint_path
    valid, bad = [], 0
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except FileNotFoundError:
        return valid, bad
    for line in lines:
        try:
            entry = json.loads(line)
            mac = entry.pop("mac")
        except (ValueError, KeyError, AttributeError):
            bad += 1
            continue
        if hmac.compare_digest(mac, _checkpoint_mac(entry)):
            valid.append(entry)
        else:
            bad += 1
    return valid, bad


def _last_line(fh):
    """The file's last line (only its tail is read: the file only grows)."""
    fh.seek(0, os.SEEK_END)
    size = fh.tell()
    fh.seek(max(0, size - 4096))
    tail = fh.read().decode("utf-8", "replace").splitlines()
    try:
        return json.loads(tail[-1]) if tail else None
    except ValueError:
        return None


def checkpoint(reason="scheduled", min_interval=0.0):
    """Append the chain's head to the checkpoint file and the service log.
    Skipped when the head is the one last written, or (for the workers'
    schedule) when another process wrote one less than `min_interval` seconds
    ago. Returns what was written, or None."""
    path = _config.checkpoint_path
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "rb+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # gunicorn's workers take turns
        head = _head()
        last = _last_line(fh)
        if last:
            if all(last.get(k) == head[k] for k in head):
                return None
            age = (utcnow() - _parse_at(last.get("at"))).total_seconds()
            if min_interval and age < min_interval:
                return None
        fields = dict(head, at=utcnow().isoformat() + "Z", reason=reason)
        line = dict(fields, mac=_checkpoint_mac(fields))
        fh.write((json.dumps(line, sort_keys=True) + "\n").encode())
        fh.flush()
        os.fsync(fh.fileno())
    log.info(
        "audit checkpoint (%s): %d entries, last #%d %s, legacy up to #%d",
        reason,
        head["entries"],
        head["last_id"],
        head["last_mac"],
        head["legacy_last"],
    )
    return line


def _parse_at(text):
    import datetime

    try:
        return datetime.datetime.fromisoformat((text or "").rstrip("Z"))
    except ValueError:
        return datetime.datetime.min


class Checkpointer:
    """Each gunicorn worker's thread: a checkpoint every `seconds` (the file's
    lock and its newest line's time make one worker write it), and one when
    the worker stops."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.stop = threading.Event()
        self._thread = None

    def start(self):
        if self._thread is None and self.seconds > 0:
            self._thread = threading.Thread(target=self._run, name="audit-checkpoint", daemon=True)
            self._thread.start()

    def _run(self):
        while not self.stop.wait(self.seconds):
            self.run_once("scheduled", min_interval=self.seconds * 0.9)

    def run_once(self, reason, min_interval=0.0):
        from .db import database

        try:
            with database.connection_context():
                return checkpoint(reason, min_interval)
        except Exception:
            log.exception("could not write the audit checkpoint")


# -- verification -----------------------------------------------------------------


@dataclass
class Report:
    """What `verify()` found. `problems`: (code, details) pairs, in order."""

    entries: int = 0
    last_id: int = 0
    legacy_last: int = 0
    broken_at: int = None
    checkpoint: dict = None
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    def as_dict(self):
        return {
            "ok": self.ok,
            "entries": self.entries,
            "last_id": self.last_id,
            "legacy_last": self.legacy_last,
            "broken_at": self.broken_at,
            "checkpoint": self.checkpoint,
            "problems": [dict(details, code=code) for code, details in self.problems],
        }


_ENTRY = (
    AuditEvent.id,
    AuditEvent.at,
    AuditEvent.event,
    AuditEvent.actor,
    AuditEvent.subject,
    AuditEvent.address,
    AuditEvent.detail,
    AuditEvent.chain,
)


def _walk(report):
    """The chain itself: the first entry whose MAC (or legacy hash) does not
    match, or where the switch point's marker is missing."""
    prev = ""
    switch = report.legacy_last
    for row in AuditEvent.select(*_ENTRY).order_by(AuditEvent.id).tuples().iterator():
        id_, at, event, actor, subject, address, detail, chain = row
        report.entries += 1
        report.last_id = id_
        if report.broken_at is not None:
            continue
        entry = (at, event, actor, subject, address, detail)
        if id_ <= switch:
            expected = legacy_digest(prev, *entry)
        else:
            expected = keyed_digest(prev, *entry)
            if (
                switch
                and prev is not None
                and not is_keyed(prev)
                and (event != MARKER_EVENT or detail != str(switch))
            ):
                expected = None  # the first keyed entry must be the marker
        if expected is None or not hmac.compare_digest(expected, chain):
            report.broken_at = id_
            report.problems.append(("entry_altered", {"id": id_}))
        prev = chain


def _against_checkpoint(report, checkpoints, bad):
    if bad:
        report.problems.append(("checkpoint_forged", {"lines": bad}))
    if not checkpoints:
        return
    newest = checkpoints[-1]
    report.checkpoint = newest
    if any(c.get("legacy_last") != report.legacy_last for c in checkpoints):
        report.problems.append(
            ("switch_moved", {"checkpointed": newest.get("legacy_last"), "now": report.legacy_last})
        )
    row = (
        (AuditEvent.select(AuditEvent.chain).where(AuditEvent.id == newest["last_id"]).first())
        if newest["last_id"]
        else None
    )
    upto = AuditEvent.select().where(AuditEvent.id <= newest["last_id"]).count()
    same_head = (row.chain == newest["last_mac"]) if row else newest["last_id"] == 0
    if not same_head or upto != newest["entries"]:
        report.problems.append(
            (
                "entries_removed",
                {
                    "checkpoint_at": newest["at"],
                    "entries_then": newest["entries"],
                    "entries_now": upto,
                    "last_id": newest["last_id"],
                },
            )
        )


def verify(checkpoint_path=None):
    """The whole audit log against its key and the newest checkpoint."""
    report = Report(legacy_last=legacy_last())
    _walk(report)
    checkpoints, bad = read_checkpoints(checkpoint_path)
    _against_checkpoint(report, checkpoints, bad)
    return report


def describe(report):
    """The report in plain English lines, for the command line and the log."""
    lines = [
        f"audit log: {report.entries} entries, last #{report.last_id}, "
        f"unkeyed legacy entries up to #{report.legacy_last}"
    ]
    if report.checkpoint:
        cp = report.checkpoint
        lines.append(
            f"newest checkpoint: {cp['at']} ({cp['reason']}): {cp['entries']} "
            f"entries, last #{cp['last_id']}"
        )
    else:
        lines.append("no checkpoint yet: removed newest entries could not be detected")
    texts = {
        "entry_altered": "ALTERED: entry #{id} does not match its MAC (changed, or an "
        "entry before it removed)",
        "entries_removed": "REMOVED: the checkpoint of {checkpoint_at} counted {entries_then} "
        "entries up to #{last_id}; the database has {entries_now}, or "
        "that entry changed",
        "switch_moved": "ALTERED: the legacy switch point is #{now}, checkpointed #{checkpointed}",
        "checkpoint_forged": "FORGED: {lines} line(s) of the checkpoint file fail their MAC",
    }
    lines += [texts[code].format(**details) for code, details in report.problems]
    lines.append("the audit log is whole" if report.ok else "THE AUDIT LOG WAS TAMPERED WITH")
    return lines
