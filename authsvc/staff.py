"""The staff side: the dashboard of recorded studies (polled, newest first),
the pending password of each new login until its slip is printed, reissuing a
password, the rule logins that see each study, the patients' shares (list and
revoke), the tag rules as applied (read-only), the studies held back as
identity conflicts (admins resolve them), and the admins' list of staff
accounts.

Radiologists see every study, print slips and reissue passwords; admins also
manage staff accounts. Which studies staff see comes from
authsvc/decision/visibility.py's `visible_studies`, like everyone else's.
"""

import logging
import re

from flask import Blueprint, current_app, jsonify, redirect, request, url_for
from flask_babel import gettext

from . import (
    audit,
    auditchain,
    auditview,
    conflictlist,
    conflicts,
    credentials,
    display,
    passwords,
    rules,
    sharing,
    studylist,
)
from .errors import ApiError
from .i18n import LANGUAGES, local_datetime
from .models import Patient, Session, StaffUser, get_value, utcnow
from .sessions import forget_recent
from .ui import error_page, harden, render_page
from .web import current_principal, json_body, staff_or_error

log = logging.getLogger(__name__)
bp = Blueprint("staff", __name__)
bp.after_request(harden)

ROLES = ("admin", "radiologist")
USERNAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MIN_STAFF_PASSWORD = 12


# -- who may do what -------------------------------------------------------


def staff_page(admin=False):
    """(principal, None) for a page staff may open, else (None, response)."""
    principal = current_principal()
    if principal is None or not principal.sees_everything:
        return None, redirect(url_for("pages.staff_login"))
    if admin and not principal.is_admin:
        return None, error_page(403, gettext("Only administrators may manage staff accounts."))
    return principal, None


def _patient_or_404(patient_id):
    patient = Patient.get_or_none(Patient.patient_id == patient_id)
    if patient is None:
        raise ApiError(404, "no_such_patient", gettext("There is no patient with this ID."))
    return patient


# -- pages -----------------------------------------------------------------


@bp.get("/staff")
def dashboard():
    principal, response = staff_page()
    if response:
        return response
    from .attach import REPORT_MAX_BYTES  # attach.py builds on this module

    return render_page(
        "dashboard.html",
        poll_seconds=current_app.config["DASHBOARD_POLL_SECONDS"],
        display_available=display.available(),
        rules_error=rules_error(),
        report_max_bytes=REPORT_MAX_BYTES,
    )


def rules_error():
    """The rules file's error in the page's language, if it has one (every
    rule login is then off)."""
    return rules.error_text(get_value(rules.ERROR_KEY, ""), gettext)


@bp.get("/staff/shares")
def shares_page():
    principal, response = staff_page()
    if response:
        return response
    return render_page("shares.html", rules_error=rules_error())


@bp.get("/staff/rules")
def rules_page():
    """The tag rules as the service applies them (GET /api/rules), read-only:
    they are edited in the rules file."""
    principal, response = staff_page()
    if response:
        return response
    # The file's error, if any, in the page's language (its own box, not the
    # banner of the other staff pages).
    return render_page(
        "rules.html", rules_file=current_app.config["RULES_FILE"], rules_file_error=rules_error()
    )


@bp.get("/staff/users")
def users_page():
    principal, response = staff_page(admin=True)
    if response:
        return response
    return render_page(
        "users.html", roles=ROLES, min_password=MIN_STAFF_PASSWORD, rules_error=rules_error()
    )


@bp.get("/staff/audit")
def audit_page():
    """Admins: the audit log with filters and a CSV export (GET /api/audit)."""
    principal, response = staff_page(admin=True)
    if response:
        return response
    report = auditchain.verify()
    return render_page(
        "audit.html",
        events=auditview.audit_event_names(),
        rules_error=rules_error(),
        verification=report,
        tampering=audit_problems(report),
    )


@bp.get("/staff/api/audit")
def audit_rows():
    """Admins: the audit page's rows and CSV: GET /api/audit's answer
    (auditview.audit_response), the refusals in the page's language."""
    staff_or_error(admin=True)
    return auditview.audit_response()


def audit_problems(report):
    """What the audit log's verification found, in the page's language."""
    texts = {
        "entry_altered": lambda d: gettext(
            "Entry %(id)s does not match its key: it was changed, or an entry before it "
            "was removed.",
            id=d["id"],
        ),
        "entries_removed": lambda d: gettext(
            "Entries were removed: the checkpoint of %(at)s counted %(then)s entries up "
            "to entry %(last)s; the database now holds %(now)s of them, or that entry "
            "was changed.",
            at=d["checkpoint_at"],
            then=d["entries_then"],
            now=d["entries_now"],
            last=d["last_id"],
        ),
        "switch_moved": lambda d: gettext(
            "The point where keyed entries begin was moved (checkpointed: entry "
            "%(then)s; now: %(now)s).",
            then=d["checkpointed"],
            now=d["now"],
        ),
        "checkpoint_forged": lambda d: gettext(
            "%(n)s line(s) of the checkpoint file do not match the key.", n=d["lines"]
        ),
    }
    return [texts[code](details) for code, details in report.problems]


# -- JSON routes of the dashboard -----------------------------------------


@bp.get("/staff/api/studies")
def studies():
    """The dashboard's rows: GET /api/studies's answer (studylist.py), for
    staff only."""
    return studylist.studies_response(staff_or_error())


@bp.get("/staff/api/conflicts")
def conflicts_list():
    """The dashboard's held studies: GET /api/ingest/conflicts's answer
    (conflictlist.py), for staff."""
    return conflictlist.conflicts_response(staff_or_error())


def _resolve_error_text(code):
    return {
        "bad_action": gettext("Choose to attach the study or to make a separate login."),
        "no_such_conflict": gettext("This conflict was already resolved."),
        "bad_login": gettext(
            "The study can be attached only to the login of its PatientID "
            "or to a separate login made for it."
        ),
    }.get(code, gettext("That did not work. Try again in a moment."))


@bp.post("/staff/api/conflicts/<orthanc_id>/resolve")
def resolve_conflict(orthanc_id):
    """Admins: {"action": "attach", "patient_id": optional} or {"action":
    "separate"}; also POST /api/ingest/conflicts/<id>/resolve. Answers
    {"ok", "patient_id", "password"}: the password of a login made now (else
    null), once; the dashboard shows it until its slip is printed."""
    principal = staff_or_error(admin=True)
    body = json_body()
    login_id = body.get("patient_id")
    if login_id is not None and not isinstance(login_id, str):
        raise ApiError(400, "bad_field", gettext("The request is not valid."))
    try:
        patient, password = conflicts.resolve(
            orthanc_id,
            body.get("action"),
            login_id,
            actor=principal.audit_name,
            address=request.remote_addr,
        )
    except conflicts.ResolveError as exc:
        raise ApiError(exc.status, exc.code, _resolve_error_text(exc.code)) from exc
    return jsonify(ok=True, patient_id=patient.patient_id, password=password)


@bp.get("/staff/api/shares")
def shares():
    """The shares page's list: GET /api/shares's answer (sharing.py), for
    staff only. Revoking goes through POST /api/shares/<id>/revoke."""
    return sharing.shares_response(staff_or_error())


def mark_printed(patient, set_at, lang, principal, how="slip printed"):
    """A slip was printed: wipe the display copy, if `set_at` (the ISO time
    of the password the slip showed) still names the current password, so
    that a password reissued meanwhile (by someone else) is not wiped unseen.
    True if it was marked."""
    current = patient.password_set_at.isoformat() if patient.password_set_at else None
    if not isinstance(set_at, str) or set_at != current:
        return False
    Patient.update(
        display_password=None,
        slip_printed_at=utcnow(),
        slip_language=lang if lang in LANGUAGES else patient.slip_language,
    ).where(Patient.id == patient.id).execute()
    log.info("slip of patient #%s printed by staff user %s", patient.id, principal.staff.username)
    audit.record(
        "password_printed",
        actor=principal.audit_name,
        subject=f"patient {patient.patient_id}",
        address=request.remote_addr,
        detail=f"{how}; display copy wiped",
    )
    return True


@bp.post("/staff/api/patients/<path:patient_id>/printed")
def printed(patient_id):
    """The slip was printed: wipe the display copy (see mark_printed)."""
    principal = staff_or_error()
    body = json_body()
    patient = _patient_or_404(patient_id)
    if not mark_printed(patient, body.get("password_set_at"), body.get("language"), principal):
        raise ApiError(
            409,
            "password_changed",
            gettext("The password changed since this slip was shown. Print the new slip."),
        )
    return jsonify(ok=True)


@bp.post("/staff/api/slips/printed")
def batch_printed():
    """The slips of a batch printed: {"slips": [{"patient_id", "password_set_at",
    "language"}, ...]}. Each is marked as one slip would be; those whose
    password changed meanwhile are listed in `changed` (print them again)."""
    principal = staff_or_error()
    slips = json_body().get("slips")
    if (
        not isinstance(slips, list)
        or not slips
        or len(slips) > 500
        or not all(isinstance(s, dict) and isinstance(s.get("patient_id"), str) for s in slips)
    ):
        raise ApiError(400, "bad_field", gettext("The request is not valid."))
    marked, changed = [], []
    for item in slips:
        patient = Patient.get_or_none(Patient.patient_id == item["patient_id"])
        ok = patient is not None and mark_printed(
            patient,
            item.get("password_set_at"),
            item.get("language"),
            principal,
            how="slip printed in a batch",
        )
        (marked if ok else changed).append(item["patient_id"])
    return jsonify(ok=not changed, printed=marked, changed=changed)


# A new password: the old one, its slip and its sessions stop working; the
# new one is kept (encrypted) for the slip, like a first one. The same view as
# POST /api/patients/<id>/credentials (credentials.py).
bp.add_url_rule(
    "/staff/api/patients/<path:patient_id>/reissue",
    "reissue",
    credentials.reissue_view,
    methods=["POST"],
    defaults={"how": credentials.VIA_DASHBOARD},
)


# -- staff accounts (admins) ------------------------------------------------


def _user_json(user, me):
    return {
        "id": user.id,
        "username": user.username,
        "role": user.role,
        "active": user.active,
        "created": local_datetime(user.created_at),
        "me": user.id == me.staff.id,
    }


@bp.get("/staff/api/users")
def list_users():
    me = staff_or_error(admin=True)
    users = StaffUser.select().order_by(StaffUser.username)
    return jsonify(users=[_user_json(u, me) for u in users])


@bp.post("/staff/api/users")
def create_user():
    me = staff_or_error(admin=True)
    body = json_body()
    username = body.get("username")
    role = body.get("role")
    password = body.get("password") or ""
    if not isinstance(username, str) or not USERNAME.fullmatch(username.strip()):
        raise ApiError(
            400,
            "bad_username",
            gettext("The user name must be 1 to 64 letters, digits, dots, dashes or underscores."),
        )
    if role not in ROLES:
        raise ApiError(400, "bad_role", gettext("Choose a role."))
    if not isinstance(password, str) or len(password) > 256:
        raise ApiError(400, "bad_password", gettext("The password is not valid."))
    generated = None
    if not password:
        password = generated = passwords.generate()
    elif len(password) < MIN_STAFF_PASSWORD:
        raise ApiError(
            400,
            "bad_password",
            gettext("The password must have at least %(n)s characters.", n=MIN_STAFF_PASSWORD),
        )
    username = username.strip()
    if StaffUser.select().where(StaffUser.username == username).exists():
        raise ApiError(409, "user_exists", gettext("There is already a user with this name."))
    user = StaffUser.create(
        username=username,
        role=role,
        password_hash=passwords.hash_password(password, generated=False),
    )
    log.info("staff user %s (%s) created by %s", username, role, me.staff.username)
    data = _user_json(user, me)
    # A generated password is shown once, to the admin who created the account.
    data["password"] = generated
    return jsonify(data), 201


@bp.post("/staff/api/users/<int(max=9223372036854775807):user_id>")
def update_user(user_id):
    me = staff_or_error(admin=True)
    body = json_body()
    user = StaffUser.get_or_none(StaffUser.id == user_id)
    if user is None:
        raise ApiError(404, "no_such_user", gettext("There is no such user."))
    active = body.get("active")
    if not isinstance(active, bool):
        raise ApiError(400, "bad_field", gettext("The request is not valid."))
    if user.id == me.staff.id and not active:
        raise ApiError(400, "self", gettext("You cannot deactivate your own account."))
    StaffUser.update(active=active).where(StaffUser.id == user.id).execute()
    if not active:
        Session.update(ended=True).where(Session.staff == user).execute()
    forget_recent()
    log.info(
        "staff user %s %s by %s",
        user.username,
        "activated" if active else "deactivated",
        me.staff.username,
    )
    user = StaffUser.get_by_id(user.id)
    return jsonify(_user_json(user, me))
