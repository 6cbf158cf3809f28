"""Reissuing a patient's password: the one implementation behind the
dashboard's and the slip page's button (POST /staff/api/patients/<id>/reissue)
and the scripts' POST /api/patients/<id>/credentials, so that both do the same
thing: a new hash, the display copy kept for the slip as display.py allows,
the sessions opened with the old password ended, one audit entry saying how.
The password itself is returned to the caller once and never logged."""

import logging

from flask import jsonify, request
from flask_babel import gettext

from . import audit, display, passwords
from .errors import ApiError
from .models import Patient, utcnow
from .web import json_body, services, staff_or_error

log = logging.getLogger(__name__)

# How a reissue was asked for, as the audit entry says it (auditview.py
# translates these for the audit page; older entries use the same texts).
VIA_API = "reissued by staff"
VIA_DASHBOARD = "reissued from the dashboard"


def reissue(patient, principal, how, address):
    """A new password for `patient`, issued by the staff member `principal`.
    Returns (password, kept_for_slip): kept_for_slip is False when the server
    has no display key, so that the caller's answer is the only place the
    password is ever shown."""
    password = passwords.generate()
    set_at = utcnow()
    sealed = display.seal(patient.patient_id, password, set_at)
    Patient.update(
        password_hash=passwords.hash_password(password),
        password_set_at=set_at,
        display_password=sealed,
        # The printed slip names the old password: the new one needs its own.
        slip_printed_at=None,
    ).where(Patient.id == patient.id).execute()
    # The old password stops working, and so do the sessions opened with it.
    services().sessions.end_all_for_patient(patient)
    log.info(
        "password of patient #%s reissued by staff user %s (%s)",
        patient.id,
        principal.staff.username,
        how,
    )
    audit.record(
        "password_issued",
        actor=principal.audit_name,
        subject=f"patient {patient.patient_id}",
        address=address,
        detail=how,
    )
    return password, sealed is not None


def reissue_view(patient_id, how):
    """POST /api/patients/<id>/credentials and POST
    /staff/api/patients/<id>/reissue (registered by api.py and staff.py with
    their `how`): any staff member; an empty JSON body (a cross-site form
    cannot send one). Answers {"ok", "patient_id", "password" (once),
    "kept_for_slip"}."""
    principal = staff_or_error()
    json_body()
    patient = Patient.get_or_none(Patient.patient_id == patient_id)
    if patient is None:
        raise ApiError(404, "no_such_patient", gettext("There is no patient with this ID."))
    password, kept = reissue(patient, principal, how, request.remote_addr)
    return jsonify(ok=True, patient_id=patient.patient_id, password=password, kept_for_slip=kept)
