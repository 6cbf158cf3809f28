"""The JSON API under /api: login, logout, the studies a session may see, and
issuing patient passwords (staff)."""

import json
import logging

from flask import Blueprint, current_app, jsonify, request
from . import passwords
from .access import visible_studies
from .errors import ApiError
from .text import fold
from .models import Patient, StaffUser, Study, utcnow
from .web import (json_body, request_token, require_principal,
                  require_staff, services, string_field)

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
    response.set_cookie(cfg["SESSION_COOKIE_NAME"], token, httponly=True,
                        samesite="Lax", secure=request.is_secure, path="/",
                        max_age=int(cfg["SESSION_MAX_HOURS"]) * 3600)


@bp.post("/login")
def login():
    body = json_body()
    password = string_field(body, "password")
    store = services().sessions
    if "patient_id" in body:
        patient_id = string_field(body, "patient_id", max_length=64).strip()
        patient = Patient.get_or_none(Patient.patient_id == patient_id)
        if not passwords.verify(patient.password_hash if patient else None, password):
            log.info("failed patient login")
            raise BAD_LOGIN
        token = store.start(patient=patient)
    elif "username" in body:
        username = string_field(body, "username", max_length=64).strip()
        staff = StaffUser.get_or_none((StaffUser.username == username) & StaffUser.active)
        if not passwords.verify(staff.password_hash if staff else None, password,
                                generated=False):
            log.info("failed staff login")
            raise BAD_LOGIN
        token = store.start(staff=staff)
    else:
        raise ApiError(400, "bad_field", "Send 'patient_id' or 'username' with 'password'.")
    principal = store.resolve(token)
    response = jsonify(principal.as_json())
    _set_cookie(response, token)
    return response


@bp.post("/logout")
def logout():
    json_body()
    services().sessions.end(request_token())
    response = jsonify(ok=True)
    response.delete_cookie(current_app.config["SESSION_COOKIE_NAME"], path="/")
    return response


@bp.get("/session")
def session():
    return jsonify(require_principal().as_json())


def study_json(study, principal):
    data = {
        "orthanc_id": study.orthanc_id,
        "study_instance_uid": study.study_uid,
        "date": study.study_date,
        "description": study.description,
        "modalities": [m for m in study.modalities.split("\\") if m],
        "patient_id": study.patient.patient_id,
        "patient_name": study.patient.name,
    }
    if principal.kind == "staff":
        data["recorded_at"] = study.recorded_at.isoformat() + "Z"
        data["patient_has_login"] = study.patient.password_hash is not None
        data["access_tags"] = json.loads(study.access_tags)
    return data


@bp.get("/studies")
def studies():
    principal = require_principal()
    query = visible_studies(principal).join(Patient)
    search = request.args.get("q", "").strip()
    if search and principal.kind == "staff":
        # contains() is case-insensitive (LIKE on SQLite, ILIKE on PostgreSQL);
        # names are matched folded, so "nunez" finds "NÚÑEZ^JOSÉ".
        query = query.where(Patient.patient_id.contains(search)
                            | Patient.search_name.contains(fold(search)))
    try:
        limit = min(max(int(request.args.get("limit", 100)), 1), 1000)
        offset = max(int(request.args.get("offset", 0)), 0)
    except ValueError:
        raise ApiError(400, "bad_field", "'limit' and 'offset' must be numbers.")
    rows = query.order_by(Study.recorded_at.desc(), Study.id.desc()).limit(limit).offset(offset)
    return jsonify(studies=[study_json(s, principal) for s in rows])


@bp.post("/patients/<path:patient_id>/credentials")
def issue_credentials(patient_id):
    principal = require_staff()
    json_body()
    patient = Patient.get_or_none(Patient.patient_id == patient_id)
    if patient is None:
        raise ApiError(404, "no_such_patient", "No study of this patient has been recorded.")
    password = passwords.generate()
    Patient.update(password_hash=passwords.hash_password(password),
                   password_set_at=utcnow()).where(Patient.id == patient.id).execute()
    # The old password stops working, and so do the sessions opened with it.
    services().sessions.end_all_for_patient(patient)
    log.info("new password issued for a patient by staff user %s", principal.staff.username)
    return jsonify(patient_id=patient.patient_id, password=password)
