"""Routes for Orthanc's Lua scripts only: the stable-study notification and
the request filter's question. nginx does not route /internal; each call must
also carry the shared secret."""

import hmac
import json
import logging

from flask import Blueprint, jsonify, request

from . import access, audit, fastsql, ingest
from .errors import ApiError
from .fastpath import read_body
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


AUTHORIZE_PATH = "/internal/authorize"
MAX_QUESTION = 8192  # a method, a path of at most 2048 and a token


def lua_authorize(environ, endpoints):
    """POST /internal/authorize, the Lua filter's question, answered below
    Flask (authsvc/fastpath.py): Orthanc holds its Lua lock, and so
    serializes every request it serves, while it waits for this answer.

    Always 200 with a decision, once the shared secret is right: Lua's
    HttpPost cannot read the body of an error status, and denies then anyway.
    Anything unexpected denies."""
    services = endpoints.services
    given = environ.get("HTTP_X_AUTHSVC_SECRET", "")
    if not hmac.compare_digest(given.encode(), services.secrets["ingest_secret"].encode()):
        return 403, {"error": "forbidden", "message": "Wrong or missing shared secret."}, None
    try:
        endpoints.prepare(services)
        decision = _decide(services, _read_question(environ))
    except Exception:
        log.exception("authorization failed; denying")
        decision = access.Decision(False, "internal error")
    validity = int(endpoints.config["DECISION_CACHE_SECONDS"]) if decision.granted else 0
    return 200, {"granted": decision.granted, "validity": validity, "scope": decision.scope,
                 "keys": decision.keys if decision.granted else []}, None


def _read_question(environ):
    """The JSON object asked, or None (too long, not JSON, not an object)."""
    try:
        raw = read_body(environ, MAX_QUESTION)
        body = json.loads(raw)
    except (ApiError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _decide(services, body):
    if body is None:
        return access.Decision(False, "malformed question")
    method = str(body.get("method", "")).upper()
    uri, token = body.get("uri"), body.get("token")
    if method not in access.METHODS or not isinstance(uri, str) or len(uri) > 2048:
        return access.Decision(False, "malformed question")
    if not isinstance(token, str):
        token = None
    # The session and the study asked about, in one statement.
    fastsql.prefetch([services.sessions.session_lookup(token), access.study_lookup_for_path(uri)])
    principal = services.sessions.decide_as(token) if token else None
    decision = access.decide(principal, method, uri)
    if decision.study is not None:
        audit.record_study_access(principal, decision.study)
    return decision
