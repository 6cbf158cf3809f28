"""Routes for Orthanc's Lua scripts only: the stable-study notification and
the request filter's question. nginx does not route /internal; each call must
also carry the shared secret."""

import hmac
import logging

from flask import Blueprint, current_app, jsonify, request

from . import access, audit, ingest
from .errors import ApiError
from .web import json_body, services

log = logging.getLogger(__name__)
bp = Blueprint("internal", __name__, url_prefix="/internal")



@bp.before_request
def _check_secret():
    expected = services().secrets["ingest_secret"]
    given = request.headers.get("X-Authsvc-Secret", "")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(403, "forbidden", "Wrong or missing shared secret.")


@bp.post("/stable-study")
def stable_study():
    body = json_body()
    try:
        ingest.enqueue(body.get("id") if isinstance(body.get("id"), str) else "")
    except ValueError:
        raise ApiError(400, "bad_field", "'id' must be an Orthanc study ID.")
    services().ingest_worker.wake.set()
    return jsonify(queued=True), 202


@bp.post("/authorize")
def authorize():
    """The Lua filter's question. Always 200 with a decision: Lua's HttpPost
    cannot read the body of an error status, and must deny then anyway."""
    try:
        body = json_body()
        method = str(body.get("method", "")).upper()
        uri = body.get("uri")
        token = body.get("token")
        if method not in access.METHODS or not isinstance(uri, str) or len(uri) > 2048:
            decision = access.Decision(False, "malformed question")
        else:
            principal = services().sessions.resolve(token) if isinstance(token, str) else None
            decision = access.decide(principal, method, uri)
            if decision.study is not None:
                audit.record_study_access(principal, decision.study)
    except Exception:
        log.exception("authorization failed; denying")
        decision = access.Decision(False, "internal error")
    validity = int(current_app.config["DECISION_CACHE_SECONDS"]) if decision.granted else 0
    return jsonify(granted=decision.granted, validity=validity, scope=decision.scope,
                   keys=decision.keys if decision.granted else [])
