"""Routes for Orthanc's Lua scripts only: the stable-study notification and
the request filter's question. nginx does not route /internal; each call must
also carry the shared secret."""

import hmac
import json
import logging

from flask import Blueprint, jsonify, request

from . import ingest
from .decision import pipeline, policy, routes
from .errors import ApiError
from .fastpath import Endpoint, read_body
from .web import json_body, services

log = logging.getLogger(__name__)
bp = Blueprint("internal", __name__, url_prefix="/internal")

WRONG_SECRET = ApiError(403, "forbidden", "Wrong or missing shared secret.")


def secret_ok(given, services):
    """The shared secret of Orthanc's Lua scripts, compared in constant time."""
    return hmac.compare_digest((given or "").encode(), services.secrets["ingest_secret"].encode())


@bp.before_request
def _check_secret():
    if not secret_ok(request.headers.get("X-Authsvc-Secret"), services()):
        raise WRONG_SECRET


@bp.post("/stable-study")
def stable_study():
    body = json_body()
    try:
        ingest.enqueue(body.get("id") if isinstance(body.get("id"), str) else "")
    except ValueError:
        raise ApiError(400, "bad_field", "'id' must be an Orthanc study ID.") from None
    services().ingest_worker.wake.set()
    return jsonify(queued=True), 202


AUTHORIZE_PATH = "/internal/authorize"
MAX_QUESTION = 8192  # a method, a path and query of at most 4096 and a token
MAX_URI = 4096


def _check_lua_secret(environ, services):
    if not secret_ok(environ.get("HTTP_X_AUTHSVC_SECRET"), services):
        raise WRONG_SECRET


def _lua_answer(decision, validity):
    return (
        200,
        {
            "granted": decision.granted,
            "validity": validity if decision.granted else 0,
            "scope": decision.scope,
            "keys": decision.keys if decision.granted else [],
        },
        None,
    )


def _lua_authorize(environ, endpoints):
    decision = _decide(endpoints.services, _read_question(environ))
    return _lua_answer(decision, int(endpoints.config["DECISION_CACHE_SECONDS"]))


# POST /internal/authorize, the Lua filter's question, answered below Flask
# (authsvc/fastpath.py): Orthanc holds its Lua lock, and so serializes every
# request it serves, while it waits for this answer. Always 200 with a
# decision once the shared secret is right: Lua's HttpPost cannot read the
# body of an error status, and denies then anyway. Anything unexpected denies.
_DENIED = _lua_answer(policy.refused("service failure"), 0)
LUA_AUTHORIZE = Endpoint(
    "Lua filter",
    _lua_authorize,
    authenticate=_check_lua_secret,
    unavailable=_DENIED,
    failed=_DENIED,
)


def _read_question(environ):
    """The JSON object asked, or None (too long, not JSON, not an object)."""
    try:
        raw = read_body(environ, MAX_QUESTION)
        body = json.loads(raw)
    except (ApiError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _decide(services, body):
    """`uri` is the path Orthanc's filter sees, with the query string nginx
    passed beside it (X-Authsvc-Query) when there is one: the Lua filter
    itself cannot see it."""
    if body is None:
        return policy.refused("malformed question")
    method, uri, token = body.get("method"), body.get("uri"), body.get("token")
    if not isinstance(method, str) or not isinstance(uri, str) or len(uri) > MAX_URI:
        return policy.refused("malformed question")
    if not isinstance(token, str):
        token = None
    return pipeline.answer(services, token, routes.parse(method, uri))
