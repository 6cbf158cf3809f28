"""Routes for Orthanc's Lua scripts only: the stable-study notification and
the request filter's question. nginx does not route /internal; each call must
also carry the shared secret."""

import hmac
import json
import logging
from http import HTTPStatus

from flask import Blueprint, jsonify, request

from . import access, audit, ingest
from .db import database
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


AUTHORIZE_PATH = "/internal/authorize"
MAX_QUESTION = 8192  # a method, a path of at most 2048 and a token


class LuaFilterEndpoint:
    """POST /internal/authorize, the Lua filter's question, answered below
    Flask. Orthanc holds its Lua lock, and so serializes every request it
    serves, while it waits for this answer: Flask's routing, hooks and
    response objects were a quarter of the service's time per decision
    (bench B2). Everything else goes on to Flask.

    Always 200 with a decision, once the shared secret is right: Lua's
    HttpPost cannot read the body of an error status, and denies then anyway.
    Anything unexpected denies."""

    def __init__(self, wsgi_app, flask_app, close_after):
        self.wsgi_app = wsgi_app
        self.flask_app = flask_app
        self.close_after = close_after  # PostgreSQL: hand the connection back to the pool

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != AUTHORIZE_PATH:
            return self.wsgi_app(environ, start_response)
        if environ.get("REQUEST_METHOD") != "POST":
            return _reply(start_response, 405, {"error": "method_not_allowed",
                                                "message": "POST only."})
        services = self.flask_app.extensions["authsvc"]
        given = environ.get("HTTP_X_AUTHSVC_SECRET", "")
        if not hmac.compare_digest(given.encode(), services.secrets["ingest_secret"].encode()):
            return _reply(start_response, 403, {"error": "forbidden",
                                                "message": "Wrong or missing shared secret."})
        try:
            database.connect(reuse_if_open=True)
            try:
                services.rules.check(blocking=False, wake=services.ingest_worker.wake)
                decision = _decide(services, _read_question(environ))
            finally:
                if self.close_after and not database.is_closed():
                    database.close()
        except Exception:
            log.exception("authorization failed; denying")
            decision = access.Decision(False, "internal error")
        validity = int(self.flask_app.config["DECISION_CACHE_SECONDS"]) if decision.granted else 0
        return _reply(start_response, 200, {
            "granted": decision.granted, "validity": validity, "scope": decision.scope,
            "keys": decision.keys if decision.granted else []})


def _read_question(environ):
    """The JSON object asked, or None (too long, not JSON, not an object)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > MAX_QUESTION:
        return None
    stream = environ["wsgi.input"]
    raw = stream.read(length) if length else (
        stream.read(MAX_QUESTION + 1) if environ.get("wsgi.input_terminated") else b"")
    if len(raw) > MAX_QUESTION:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _decide(services, body):
    if body is None:
        return access.Decision(False, "malformed question")
    method = str(body.get("method", "")).upper()
    uri, token = body.get("uri"), body.get("token")
    if method not in access.METHODS or not isinstance(uri, str) or len(uri) > 2048:
        return access.Decision(False, "malformed question")
    principal = services.sessions.resolve(token) if isinstance(token, str) else None
    decision = access.decide(principal, method, uri)
    if decision.study is not None:
        audit.record_study_access(principal, decision.study)
    return decision


def _reply(start_response, status, data):
    payload = json.dumps(data, separators=(",", ":")).encode()
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                    ("Cache-Control", "no-store")])
    return [payload]
