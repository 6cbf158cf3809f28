"""The JSON API under /api: login, logout, the studies a session may see, and
issuing patient passwords (staff)."""

import logging

from flask import Blueprint, current_app, jsonify, request
from peewee import fn

from . import (
    audit,
    auditview,
    conflictlist,
    conflicts,
    credentials,
    ingest,
    matching,
    passwords,
    rules,
    staff,
    studylist,
    throttle,
)
from .errors import ApiError
from .models import (
    IngestQueue,
    Patient,
    Rule,
    RuleLogin,
    RuleMatch,
    Session,
    Share,
    StaffUser,
    get_value,
    utcnow,
)
from .sessions import forget_recent
from .web import (
    current_principal,
    json_body,
    request_token,
    require_principal,
    require_staff,
    services,
    string_field,
)

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__, url_prefix="/api")

BAD_LOGIN = ApiError(401, "bad_credentials", "Wrong ID or password.")


@bp.after_request
def _no_store(response):
    # Patient data and session state: never kept by a browser or proxy cache.
    response.headers["Cache-Control"] = "no-store"
    return response


def _set_cookie(response, token):
    cfg = current_app.config
    response.set_cookie(
        cfg["SESSION_COOKIE_NAME"],
        token,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure,
        path="/",
        max_age=int(cfg["SESSION_MAX_HOURS"]) * 3600,
    )


# The three kinds of account a password opens: (body field, throttle kind).
ACCOUNT_FIELDS = (("patient_id", "patient"), ("username", "staff"), ("login", "rule"))


# What a phone's keyboard may type for a dash or a space.
_TYPED = str.maketrans(
    {
        **{c: "-" for c in "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"},
        **{c: " " for c in "\u00a0\u2007\u202f"},
    }
)
_IGNORED = (" ", "-", "\t", "\u3000")  # what typing_key drops, here and in SQL


def typing_key(patient_id):
    """A PatientID as people may type it: no spaces, no dashes, ASCII letters
    in lower case. Two IDs with the same key differ only in those."""
    for c in _IGNORED:
        patient_id = patient_id.replace(c, "")
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in patient_id)


def find_patient(typed):
    """The patient a typed ID means: the exact ID; else the one recorded
    patient whose ID differs from it only in case, spaces or dashes. When
    several do ("SP 77" and "SP  77" are two people), none: only the exact ID
    opens either. Never a guess between patients."""
    exact = Patient.get_or_none(Patient.patient_id == typed)
    if exact is not None:
        return exact
    key = typing_key(typed.translate(_TYPED))
    if not key:
        return None
    stored = Patient.patient_id
    for c in _IGNORED:
        stored = fn.REPLACE(stored, c, "")
    # LOWER folds ASCII letters at least (more on PostgreSQL): the IDs with
    # the same key are all found, or none; each is checked again here.
    rows = list(Patient.select().where(fn.LOWER(stored).in_(sorted({key, key.lower()}))).limit(20))
    rows = [r for r in rows if typing_key(r.patient_id) == key]
    return rows[0] if len(rows) == 1 else None


def _find_account(kind, name):
    """(row, stored hash, generated?) of an account; row None when unknown."""
    if kind == "patient":
        row = find_patient(name)
        return row, row.password_hash if row else None, True
    if kind == "staff":
        row = StaffUser.get_or_none((StaffUser.username == name) & StaffUser.active)
        return row, row.password_hash if row else None, False
    row = RuleLogin.get_or_none((RuleLogin.name == name) & RuleLogin.active)
    return row, row.password_hash if row else None, True


def _begin_attempt(account_key, kind, name):
    """The attempt, checked against the limits and recorded in one step."""
    try:
        return throttle.begin(request.remote_addr, account_key)
    except throttle.Throttled as exc:
        audit.record("login_throttled", actor=f"{kind} {name}", address=request.remote_addr)
        raise ApiError(
            429,
            "too_many_attempts",
            f"Too many failed attempts. Try again in {exc.retry_after} seconds.",
            headers={"Retry-After": str(exc.retry_after)},
        ) from exc


def _logged_in(store, token):
    principal = store.resolve(token)
    audit.record("login", actor=principal.audit_name, address=request.remote_addr)
    response = jsonify(principal.as_json())
    _set_cookie(response, token)
    return response


@bp.post("/login")
def login():
    body = json_body()
    store = services().sessions
    if "share" in body:
        secret = string_field(body, "share", max_length=128)
        return _share_login(store, secret, _begin_attempt(None, "share", "link"))
    field = next((f for f in ACCOUNT_FIELDS if f[0] in body), None)
    if field is None:
        raise ApiError(
            400, "bad_field", "Send 'patient_id', 'login' or 'username' with 'password'."
        )
    # Spaces typed before or after the name are dropped (no recorded ID has
    # any); a patient's ID is then found as find_patient says: the exact ID,
    # or the only patient whose ID differs in case, spaces or dashes.
    name = string_field(body, field[0], max_length=64).strip()
    password = string_field(body, "password")
    kind = field[1]
    row, stored_hash, generated = _find_account(kind, name)
    if kind == "patient" and row is not None:
        name = row.patient_id  # the limits count per account matched, however typed
    account_key = throttle.account_key(kind, name)
    # Refused unevaluated while the account or the address must wait.
    attempt = _begin_attempt(account_key, kind, name)
    if not passwords.verify(stored_hash, password, generated=generated):
        throttle.failed(attempt)
        audit.record("login_failed", actor=f"{kind} {name}", address=request.remote_addr)
        log.info("failed %s login", kind)
        raise BAD_LOGIN
    throttle.succeeded(attempt)
    token = store.start(
        **{{"patient": "patient", "staff": "staff", "rule": "rule_login"}[kind]: row}
    )
    return _logged_in(store, token)


def _share_login(store, secret, attempt):
    share = Share.get_or_none(Share.secret_hash == store.token_hash(secret))
    if share is None or share.revoked_at is not None or utcnow() >= share.expires_at:
        throttle.failed(attempt)
        audit.record("login_failed", actor="share link", address=request.remote_addr)
        log.info("failed share login")
        raise ApiError(401, "bad_share", "This link is not valid (any more).")
    throttle.succeeded(attempt)
    Share.update(last_used_at=utcnow()).where(Share.id == share.id).execute()
    return _logged_in(store, store.start(share=share))


@bp.post("/logout")
def logout():
    json_body()
    principal = current_principal()
    if principal is not None:
        audit.record("logout", actor=principal.audit_name, address=request.remote_addr)
    services().sessions.end(request_token())
    response = jsonify(ok=True)
    response.delete_cookie(current_app.config["SESSION_COOKIE_NAME"], path="/")
    return response


@bp.get("/health")
def health():
    """For the launcher and monitoring: the service answers and its database too."""
    Patient.select().limit(1).count()
    return jsonify(ok=True)


@bp.get("/session")
def session():
    return jsonify(require_principal().as_json())


@bp.get("/studies")
def studies():
    """Any login: the studies it sees (studylist.py; the dashboard's rows
    for staff)."""
    return studylist.studies_response(require_principal())


# The scripts' reissue: the dashboard's own view (credentials.py), audited as
# asked for by staff through the API.
bp.add_url_rule(
    "/patients/<path:patient_id>/credentials",
    "issue_credentials",
    credentials.reissue_view,
    methods=["POST"],
    defaults={"how": credentials.VIA_API},
)


@bp.get("/rules")
def rule_logins():
    """Staff: the rule logins as the service applies them, and any error of
    the rules file (which disables them all until fixed)."""
    require_staff()
    logins = []
    for login in RuleLogin.select().order_by(RuleLogin.name):
        logins.append(
            {
                "login": login.name,
                "description": login.description,
                "active": login.active,
                "has_password": login.password_hash is not None,
                "rules": [
                    {"tag": r.tag, "keyword": matching.tag_keyword(r.tag), "value": r.value}
                    for r in login.rules.order_by(Rule.id)
                ],
                "studies": RuleMatch.select().where(RuleMatch.login == login).count(),
            }
        )
    return jsonify(logins=logins, error=rules.error_text(get_value(rules.ERROR_KEY, "")) or None)


@bp.get("/audit")
def audit_log():
    """Admins: the audit log (auditview.audit_response; the audit page's
    own list)."""
    principal = require_staff()
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "Only admins read the audit log.")
    return auditview.audit_response()


@bp.get("/ingest/conflicts")
def ingest_conflicts():
    """Staff: the studies held back as identity conflicts (conflictlist.py;
    the dashboard's GET /staff/api/conflicts answers the same)."""
    return conflictlist.conflicts_response(require_staff())


@bp.get("/ingest/problems")
def ingest_problems():
    """Staff: stable studies the service could not record (or is still
    retrying), with the reason, e.g. a study without a usable PatientID; and
    the studies held back as identity conflicts until an admin resolves them
    (`conflict`: the entry of GET /ingest/conflicts)."""
    principal = require_staff()
    held = [
        {
            "orthanc_id": c.study_orthanc_id,
            "error": conflicts.reason(c),
            "attempts": 0,
            "gave_up": True,
            "queued_at": c.detected_at.isoformat() + "Z",
            "conflict": conflictlist.entry(c, principal),
        }
        for c in conflicts.open_conflicts()
    ]
    rows = (
        IngestQueue.select()
        .where(IngestQueue.last_error != "")
        .order_by(IngestQueue.queued_at.desc())
        .limit(1000)
    )
    return jsonify(
        problems=held
        + [
            {
                "orthanc_id": r.orthanc_id,
                "error": r.last_error,
                "attempts": r.attempts,
                "gave_up": r.attempts >= ingest.MAX_ATTEMPTS,
                "queued_at": r.queued_at.isoformat() + "Z",
            }
            for r in rows
        ]
    )


# Admins: body {"action": "attach"} (to the login of the study's PatientID,
# made now if none; or {"patient_id": ...} of a separate login made for the
# same PatientID) or {"action": "separate"} (a new login). The dashboard's own
# view (staff.resolve_conflict), which answers the login's `patient_id`, and
# its `password` when it was made now (once; also kept for its slip until
# printed). Audited.
bp.add_url_rule(
    "/ingest/conflicts/<orthanc_id>/resolve",
    "resolve_conflict",
    staff.resolve_conflict,
    methods=["POST"],
)


def _require_admin():
    principal = require_staff()
    if not principal.is_admin:
        raise ApiError(403, "forbidden", "Only admins manage sessions.")
    return principal


@bp.get("/sessions")
def list_sessions():
    """Admins: the live sessions (never their tokens), newest first."""
    _require_admin()
    store = services().sessions
    now = utcnow()
    rows = (
        Session.select()
        .where(~Session.ended & (Session.expires_at > now) & (Session.last_seen > now - store.idle))
        .order_by(Session.created_at.desc())
        .limit(1000)
    )
    sessions = []
    for row in rows:
        principal = store.principal_of_row(row, now)
        if principal is None:
            continue
        sessions.append(
            {
                "id": row.id,
                "kind": row.kind,
                "who": principal.audit_name,
                "created_at": row.created_at.isoformat() + "Z",
                "last_seen": row.last_seen.isoformat() + "Z",
                "expires_at": row.expires_at.isoformat() + "Z",
            }
        )
    return jsonify(sessions=sessions)


@bp.post("/sessions/<int(max=9223372036854775807):session_id>/end")
def end_session(session_id):
    """Admins: end any session at once (the API at once, Orthanc's routes
    within DECISION_CACHE_SECONDS)."""
    principal = _require_admin()
    json_body()
    if not Session.update(ended=True).where(Session.id == session_id).execute():
        raise ApiError(404, "no_such_session", "No such session.")
    forget_recent()
    audit.record(
        "logout",
        actor=principal.audit_name,
        subject=f"session #{session_id}",
        address=request.remote_addr,
        detail="ended by an admin",
    )
    return jsonify(ok=True)
