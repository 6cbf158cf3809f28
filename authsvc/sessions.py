"""Login sessions: random tokens handed out as a cookie, stored only as an HMAC."""

import datetime
import hashlib
import hmac
import secrets
import time

from . import fastsql, lastseen
from .decision.principals import (
    PatientPrincipal,
    Principal,  # noqa: F401 (re-exported: callers may import it from here)
    RulePrincipal,
    SharePrincipal,
    StaffPrincipal,
)
from .models import Patient, RuleLogin, Session, Share, StaffUser, utcnow

# Last-seen is written at most this often, so that a viewer loading hundreds of
# images does not turn every decision into a database write.
TOUCH_EVERY = datetime.timedelta(seconds=60)


# The session and whichever principal it belongs to, in one query (compiled
# once): this runs for every request Orthanc's filter asks about.
_JOINED = (Session, Patient, StaffUser, RuleLogin, Share)
_FOREIGN_KEYS = {
    Patient: "patient_id",
    StaffUser: "staff_id",
    RuleLogin: "rule_login_id",
    Share: "share_id",
}


def _session_statement():
    selected = [fastsql.columns(m) for m in _JOINED]
    joins = "".join(
        f' LEFT JOIN {fastsql.table(m)} ON "{m._meta.table_name}"."id" = "session"."{column}"'
        for m, column in _FOREIGN_KEYS.items()
    )
    return fastsql.Statement(
        "session",
        f"SELECT {', '.join(c for c, _ in selected)} FROM {fastsql.table(Session)}"
        f'{joins} WHERE "session"."token_hash" = {{p}}',
        sum(w for _, w in selected),
    )


SESSION = _session_statement()


# For the decision paths only: token hash -> (the row as read, the Session
# built from it). A row read again that is equal in every column gives the
# same models, so they are not built again (building five models from a row
# was a sixth of a decision's CPU); any change to the row (ended, revoked,
# disabled, last_seen) builds them anew. The database is read every time.
_built = {}
_BUILT_MAX = 5000


def _fetch_session(token_hash, reuse=False):
    """The Session row with its principal attached (no lazy loads), or None.
    `reuse`: the models built for an equal row may be returned (the decision
    paths, which only read them; pages get their own)."""
    raw = fastsql.fetch_one(SESSION, token_hash)
    if raw is None:
        return None
    if reuse:
        hit = _built.get(token_hash)
        if hit is not None and hit[0] == raw:
            return hit[1]
    made, at = {}, 0
    for model in _JOINED:
        width = len(model._meta.sorted_fields)
        made[model] = fastsql.row_object(model, raw[at : at + width])
        at += width
    session = made[Session]
    for model, name in (
        (Patient, "patient"),
        (StaffUser, "staff"),
        (RuleLogin, "rule_login"),
        (Share, "share"),
    ):
        if made[model] is not None:
            setattr(session, name, made[model])
    if reuse:
        if len(_built) >= _BUILT_MAX:
            _built.clear()
        _built[token_hash] = (tuple(raw), session)
    return session


# The decision paths' short memory of live sessions (see SessionStore.decide_as),
# per process: token hash -> (monotonic deadline, principal, session's end,
# {Orthanc ID: that study's keys} of the studies granted to it meanwhile).
_recent = {}
_RECENT_MAX = 5000
_GRANTS_MAX = 20000  # remembered Orthanc IDs per session, before they are dropped


def forget_recent():
    """Something ended or narrowed access (logout, a session ended by an
    admin, a rule login changed, a share revoked, staff disabled): this
    process's decisions look at the database again at once. Other processes
    catch up within SESSION_CACHE_SECONDS."""
    _recent.clear()


class SessionStore:
    def __init__(self, secret_key, idle_minutes, max_hours, cache_seconds=0.0):
        self._key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        self.idle = datetime.timedelta(minutes=idle_minutes)
        self.max_age = datetime.timedelta(hours=max_hours)
        self.cache_seconds = float(cache_seconds)
        self._hashes = {}

    def token_hash(self, token):
        # A decision hashes its token twice (session_lookup, then decide_as):
        # the last few are kept, in this process's memory only.
        digest = self._hashes.get(token)
        if digest is None:
            digest = hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()
            if len(self._hashes) >= 64:
                self._hashes.clear()
            self._hashes[token] = digest
        return digest

    def start(self, *, patient=None, staff=None, rule_login=None, share=None):
        """A new session (never a reused token); returns the token, shown once."""
        kinds = [
            k
            for k, v in (
                ("patient", patient),
                ("staff", staff),
                ("rule", rule_login),
                ("share", share),
            )
            if v is not None
        ]
        if len(kinds) != 1:
            raise ValueError("a session belongs to exactly one principal")
        token = secrets.token_urlsafe(32)  # 256 bits
        now = utcnow()
        expires = now + self.max_age
        if share is not None:
            expires = min(expires, share.expires_at)
        Session.create(
            token_hash=self.token_hash(token),
            kind=kinds[0],
            patient=patient,
            staff=staff,
            rule_login=rule_login,
            share=share,
            created_at=now,
            last_seen=now,
            expires_at=expires,
        )
        return token

    def resolve(self, token):
        """The principal of a live session, or None. Unknown, ended, idle or
        expired sessions and malformed tokens all give None."""
        return self._resolve(token)[0]

    def decide_as(self, token):
        """`resolve` for the access-decision endpoints, which answer a
        viewer's hundreds of requests per study: a live session found in the
        database is remembered for `cache_seconds` (SESSION_CACHE_SECONDS),
        in this process, so that its next questions skip the lookup (a third
        of a decision's statements). Its own end (idle or absolute) still
        applies to the second. Ending it, here or elsewhere, reaches these
        answers within that time; Orthanc's filter and the Authorization
        plugin reuse each answer for DECISION_CACHE_SECONDS anyway."""
        if not self.cache_seconds or not isinstance(token, str) or not 20 <= len(token) <= 128:
            return self.resolve(token)
        key = self.token_hash(token)
        hit = _recent.get(key)
        if hit is not None and hit[0] > time.monotonic() and utcnow() < hit[2]:
            return hit[1]
        principal, ends = self._resolve(token, key, reuse=True)
        if principal is not None:
            if len(_recent) >= _RECENT_MAX:
                _recent.clear()
            _recent[key] = (time.monotonic() + self.cache_seconds, principal, ends, {})
        return principal

    def _remembered(self, token):
        if not self.cache_seconds or not isinstance(token, str) or not 20 <= len(token) <= 128:
            return None
        hit = _recent.get(self.token_hash(token))
        if hit is None or hit[0] <= time.monotonic() or utcnow() >= hit[2]:
            return None
        return hit

    def remembered_grant(self, token, orthanc_id):
        """The keys of a study granted to this session in the last
        `cache_seconds` that holds `orthanc_id`, or None. The grant lives and
        is forgotten with the session's memory (`forget_recent`), so it
        reaches no further than the session lookup it saves."""
        hit = self._remembered(token)
        return hit[3].get(orthanc_id) if hit is not None else None

    def remember_grant(self, token, keys):
        """Remember the grant of one study (its Orthanc IDs) for this session."""
        hit = self._remembered(token)
        if hit is None:
            return
        grants = hit[3]
        if len(grants) + len(keys) > _GRANTS_MAX:
            grants.clear()
        for key in keys:
            grants[key] = keys

    def session_lookup(self, token):
        """The compiled lookup `decide_as` will run for this token, if one
        (for fastsql.prefetch): none when it is malformed or remembered."""
        if not isinstance(token, str) or not 20 <= len(token) <= 128:
            return None
        key = self.token_hash(token)
        hit = _recent.get(key) if self.cache_seconds else None
        if hit is not None and hit[0] > time.monotonic():
            return None
        return SESSION, (key,)

    def _resolve(self, token, key=None, reuse=False):
        """(principal, when the session ends if unused) or (None, None)."""
        if not isinstance(token, str) or not 20 <= len(token) <= 128:
            return None, None
        row = _fetch_session(key or self.token_hash(token), reuse)
        if row is None or row.ended:
            return None, None
        now = utcnow()
        if now >= row.expires_at or now - row.last_seen >= self.idle:
            return None, None
        principal = self.principal_of_row(row, now)
        if principal is not None and now - row.last_seen >= TOUCH_EVERY:
            lastseen.notes.note(row.id, now)  # written off this request
        return principal, min(row.expires_at, row.last_seen + self.idle)

    @staticmethod
    def principal_of_row(row, now):
        """The session's principal if it may still act: staff and rule logins
        can be disabled, shares revoked or expired, all taking effect at once."""
        # A session whose principal is gone (a deleted login) is over.
        if row.kind == PatientPrincipal.kind and row.patient_id is not None:
            return PatientPrincipal(row.id, patient=row.patient)
        if row.kind == StaffPrincipal.kind and row.staff_id is not None:
            return StaffPrincipal(row.id, staff=row.staff) if row.staff.active else None
        if row.kind == RulePrincipal.kind and row.rule_login_id is not None:
            login = row.rule_login
            if not login.active or not login.password_hash:
                return None
            return RulePrincipal(row.id, rule_login=login)
        if row.kind == SharePrincipal.kind and row.share_id is not None:
            share = row.share
            if share.revoked_at is not None or now >= share.expires_at:
                return None
            return SharePrincipal(row.id, share=share)
        return None

    def end(self, token):
        if isinstance(token, str) and token:
            (
                Session.update(ended=True)
                .where(Session.token_hash == self.token_hash(token))
                .execute()
            )
            forget_recent()

    def end_all_for_patient(self, patient):
        Session.update(ended=True).where(Session.patient == patient).execute()
        forget_recent()
