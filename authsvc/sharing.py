"""Shares: a patient hands access to one study, or all their studies, to
whomever they choose, with an expiry; patients and staff can revoke them.

The share's secret travels in the link's URL fragment (PUBLIC_URL/#share=...),
which browsers never send to a server, so it stays out of every log. Only its
HMAC is stored. Whoever opens the link gets a read-only session that ends when
the share expires or is revoked (checked on every request)."""

import datetime
import logging
import secrets

from flask import Blueprint, current_app, jsonify, request
from flask_babel import gettext
from peewee import JOIN, fn

from . import audit, qr
from .decision.principals import PatientPrincipal
from .errors import ApiError
from .i18n import local_date_time, person_name, study_date
from .models import Patient, Session, Share, Study, utcnow
from .sessions import forget_recent
from .text import fold
from .web import json_body, require_principal, services

log = logging.getLogger(__name__)
bp = Blueprint("sharing", __name__, url_prefix="/api/shares")


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


# -- one JSON shape, one query ---------------------------------------------


def last_uses(shares):
    """{share id: when its link was last used}: the latest of its opening
    and of its sessions' last request (sessions.py touches last_seen)."""
    ids = [s.id for s in shares]
    used = {s.id: s.last_used_at for s in shares if s.last_used_at}
    if ids:
        for row in (
            Session.select(Session.share, fn.MAX(Session.last_seen).alias("seen"))
            .where(Session.share.in_(ids))
            .group_by(Session.share)
        ):
            used[row.share_id] = max(filter(None, (used.get(row.share_id), row.seen)))
    return used


def _used_text(when):
    if when is None:
        return gettext("Used: never")
    return gettext("Last used: %(when)s", when=local_date_time(when))


def _revoker(audit_name):
    """Who revoked a share, for people: the patient, or the staff member's user name."""
    if audit_name.startswith("staff "):
        return audit_name[len("staff ") :]
    if audit_name.startswith("patient"):
        return gettext("the patient")
    return audit_name or "?"


def share_json(share, principal, last_used=None, url=None):
    """A share as every list (and its creation) answers it: the machine
    values (ISO times, "Z") and the same for people in the request's language.
    `share` is selected with its patient and (outer-joined) study; `url` and
    its QR code only when it was just created (the secret is never stored)."""
    now = utcnow()
    if share.revoked_at is not None:
        state = "revoked"
        state_text = gettext(
            "Revoked %(when)s by %(who)s",
            when=local_date_time(share.revoked_at),
            who=_revoker(share.revoked_by),
        )
    elif now >= share.expires_at:
        state, state_text = "expired", gettext("Expired")
    else:
        state, state_text = "active", gettext("Active")
    study = share.study if share.study_id else None
    if study is not None:
        what = " · ".join(
            p for p in (study.description or gettext("Study"), study_date(study.study_date)) if p
        )
    elif principal.sees_everything:
        what = gettext("All the patient's studies")
    else:
        what = gettext("All your studies")
    data = {
        "id": share.id,
        "patient_id": share.patient.patient_id,
        "patient_name": share.patient.name,
        "patient_name_text": person_name(share.patient.name),
        "study": study.orthanc_id if study else None,
        "what": what,
        "created_at": share.created_at.isoformat() + "Z",
        "created": local_date_time(share.created_at),
        "expires_at": share.expires_at.isoformat() + "Z",
        "expires": local_date_time(share.expires_at),
        "revoked": share.revoked_at is not None,
        "state": state,
        "state_text": state_text,
        "active": state == "active",
        "used": _used_text(last_used),
        "revoke_url": f"/api/shares/{share.id}/revoke",
    }
    if url:
        data["url"] = url
        data["qr_svg"] = qr.svg(url)
    return data


def shares_query():
    return (
        Share.select(Share, Patient, Study)
        .join(Patient)
        .switch(Share)
        .join(Study, JOIN.LEFT_OUTER)
        .order_by(Share.created_at.desc(), Share.id.desc())
    )


def active_only(query):
    return query.where(Share.revoked_at.is_null() & (Share.expires_at > utcnow()))


MAX_LISTED = 1000


def shares_response(principal):
    """The answer of every list of shares, for a patient (their own) or staff
    (everyone's), whom the URL has already let in: newest first, the active
    ones or all with `all=1`; `q` narrows to a patient ID or name."""
    query = shares_query()
    if isinstance(principal, PatientPrincipal):
        query = query.where(Share.patient == principal.patient)
    elif not principal.sees_everything:  # each URL refuses the others first: fail closed anyway
        raise ApiError(403, "forbidden", gettext("You may not do this."))
    if request.args.get("all") != "1":
        query = active_only(query)
    search = request.args.get("q", "").strip()[:100]
    if search:
        query = query.where(
            Patient.patient_id.contains(search) | Patient.search_name.contains(fold(search))
        )
    shares = list(query.limit(MAX_LISTED))
    used = last_uses(shares)
    return jsonify(shares=[share_json(s, principal, used.get(s.id)) for s in shares], search=search)


def _days(body):
    cfg = current_app.config
    days = body.get("days", cfg["SHARE_DEFAULT_DAYS"])
    if (
        isinstance(days, bool)
        or not isinstance(days, int)
        or not 1 <= days <= int(cfg["SHARE_MAX_DAYS"])
    ):
        raise ApiError(
            400, "bad_field", f"'days' must be a whole number from 1 to {cfg['SHARE_MAX_DAYS']}."
        )
    return days


@bp.post("")
def create_share():
    principal = require_principal()
    if not isinstance(principal, PatientPrincipal):
        raise ApiError(403, "forbidden", "Only patients share their studies.")
    body = json_body()
    days = _days(body)
    study = None
    if body.get("study") is not None:
        study = Study.get_or_none(
            (Study.orthanc_id == str(body["study"])) & (Study.patient == principal.patient)
        )
        if study is None:
            raise ApiError(404, "no_such_study", "No such study among yours.")
    secret = secrets.token_urlsafe(24)  # 192 bits
    share = Share.create(
        secret_hash=services().sessions.token_hash(secret),
        patient=principal.patient,
        study=study,
        expires_at=utcnow() + datetime.timedelta(days=days),
    )
    url = f"{current_app.config['PUBLIC_URL'].rstrip('/')}/#share={secret}"
    log.info("share #%s created by %s", share.id, principal.audit_name)
    audit.record(
        "share_created",
        actor=principal.audit_name,
        subject=f"share #{share.id}",
        address=request.remote_addr,
        detail=f"study {study.orthanc_id}" if study else "all studies",
    )
    share = shares_query().where(Share.id == share.id).get()
    return jsonify(share_json(share, principal, url=url)), 201


@bp.get("")
def list_shares():
    """Patients (theirs) and staff (everyone's): shares_response."""
    principal = require_principal()
    if not (isinstance(principal, PatientPrincipal) or principal.sees_everything):
        raise ApiError(403, "forbidden", "Only patients and staff see shares.")
    return shares_response(principal)


@bp.post("/<int(max=9223372036854775807):share_id>/revoke")
def revoke_share(share_id):
    principal = require_principal()
    json_body()
    share = Share.get_or_none(Share.id == share_id)
    allowed = share is not None and (
        principal.sees_everything
        or (isinstance(principal, PatientPrincipal) and share.patient_id == principal.patient.id)
    )
    if not allowed:
        raise ApiError(404, "no_such_share", "No such share.")
    if share.revoked_at is None:
        Share.update(revoked_at=utcnow(), revoked_by=principal.audit_name).where(
            Share.id == share.id
        ).execute()
        forget_recent()
        log.info("share #%s revoked by %s", share.id, principal.audit_name)
        audit.record(
            "share_revoked",
            actor=principal.audit_name,
            subject=f"share #{share.id}",
            address=request.remote_addr,
        )
    return jsonify(ok=True)
