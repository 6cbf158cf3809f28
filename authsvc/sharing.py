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

from . import audit, qr
from .errors import ApiError
from .models import Share, Study, utcnow
from .sessions import forget_recent
from .web import json_body, require_principal, services

log = logging.getLogger(__name__)
bp = Blueprint("sharing", __name__, url_prefix="/api/shares")


@bp.after_request
def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def share_json(share, url=None):
    data = {
        "id": share.id,
        "patient_id": share.patient.patient_id,
        "study": share.study.orthanc_id if share.study_id else None,
        "created_at": share.created_at.isoformat() + "Z",
        "expires_at": share.expires_at.isoformat() + "Z",
        "revoked": share.revoked_at is not None,
        "active": share.revoked_at is None and utcnow() < share.expires_at,
    }
    if url:
        data["url"] = url
        data["qr_svg"] = qr.svg(url)
    return data


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
    if principal.kind != "patient":
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
    return jsonify(share_json(share, url)), 201


@bp.get("")
def list_shares():
    principal = require_principal()
    query = Share.select().order_by(Share.created_at.desc())
    if principal.kind == "patient":
        query = query.where(Share.patient == principal.patient)
    elif principal.kind != "staff":
        raise ApiError(403, "forbidden", "Only patients and staff see shares.")
    if request.args.get("all") != "1":
        query = query.where(Share.revoked_at.is_null() & (Share.expires_at > utcnow()))
    return jsonify(shares=[share_json(s) for s in query.limit(1000)])


@bp.post("/<int(max=9223372036854775807):share_id>/revoke")
def revoke_share(share_id):
    principal = require_principal()
    json_body()
    share = Share.get_or_none(Share.id == share_id)
    allowed = share is not None and (
        principal.kind == "staff"
        or (principal.kind == "patient" and share.patient_id == principal.patient.id)
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
