"""The Orthanc Authorization plugin's webhook, over the same decisions as the Lua filter.

The `orthancteam/orthanc` docker image ships the Authorization plugin, which
asks a web service about every request instead of running our Lua filter.
The validation itself is answered below Flask, by `validate` through
authsvc/fastpath.py; the other calls are this blueprint's routes:

- ``"WebServiceUserProfileUrl": "http://<service>/authz/user/get-profile"`` and
  ``"WebServiceTokenValidationUrl": "http://<service>/authz/tokens/validate"``:
  what deploy/docker/orthanc.json sets (staff's roles from the profile, every
  other check a validation);
- legacy ``"WebService": "http://<service>/authz/"``: every question is a POST
  to that URL;
- ``"WebServiceRootUrl": "http://<service>/authz/"``: the plugin derives
  ``/authz/tokens/validate``, ``/authz/user/get-profile``,
  ``/authz/tokens/decode`` and ``PUT /authz/tokens/{type}`` from it.

The plugin logs in with HTTP basic auth (``"WebServiceUsername"`` /
``"WebServicePassword"``): the password must be the ``webhook_secret``; without
that secret every call is refused. Bodies are exactly those the real plugin sent
(tests/fixtures/authorization-plugin-requests.jsonl):
chunked since plugin 0.9.1, ``identifier`` (0.3-0.4) or ``server-id`` (0.5+),
no token at all (0.10+), ``Bearer `` prefixes. Tokens are the service's own
session tokens, read from the body only (the plugin forwards them as headers
too, but not the ``Authorization`` one once it logs in itself).
"""

import hmac
import json
import logging
from dataclasses import dataclass

from flask import Blueprint, current_app, jsonify, request
from werkzeug.datastructures import Authorization

from .decision import pipeline, routes
from .errors import ApiError
from .fastpath import Endpoint, read_body
from .web import services

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__, url_prefix="/authz")

# The plugin's bodies are a few hundred bytes; anything far larger is not one.
MAX_BODY = 64 * 1024
# Logout and revocation must reach Orthanc within 10 s, and the plugin
# caches each answer for `validity` seconds.
MAX_VALIDITY = 10
MIN_SECRET_LENGTH = pipeline.MIN_SECRET_LENGTH
METHODS = ("get", "post", "put", "delete")
LEVELS = tuple(routes.PLUGIN_LEVELS) + ("system",)
MAX_ID = 128  # Orthanc IDs are 44 characters, UIDs and PatientIDs 64
MAX_URI = 2048
MAX_TOKEN = 1024


@dataclass(frozen=True)
class Question:
    """One validation request of the plugin, checked."""

    method: str  # upper-case HTTP
    level: str
    orthanc_id: str = ""
    dicom_uid: str = ""
    uri: str = ""
    token: str = None


# -- protection of the webhook itself -----------------------------------------


def _webhook_secret(services):
    secret = services.secrets.get("webhook_secret") or ""
    return secret if len(secret) >= MIN_SECRET_LENGTH else ""


def _check_basic_auth(environ, services):
    expected = _webhook_secret(services)
    if not expected:
        # Fail closed: a service without the secret answers no plugin at all.
        raise ApiError(403, "webhook_disabled", "The webhook has no secret configured.")
    header = environ.get("HTTP_AUTHORIZATION") or ""
    # The plugin sends the same header with every question: once it was
    # found right, the same bytes are (compared in constant time, and kept
    # only with the secret they matched).
    known = _accepted.get(expected)
    if known is not None and hmac.compare_digest(header.encode(), known):
        return
    auth = Authorization.from_header(header or None)
    given = auth.password if auth is not None and auth.type == "basic" and auth.password else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "bad_credentials", "Wrong or missing webhook credentials.")
    _accepted.clear()
    _accepted[expected] = header.encode()


# secret -> the Authorization header last accepted with it (one entry).
_accepted = {}


@bp.record_once
def _warn_when_closed(state):
    secret = state.app.extensions["authsvc"].secrets.get("webhook_secret") or ""
    if len(secret) < MIN_SECRET_LENGTH:
        log.warning(
            "no webhook_secret of %d+ characters: the Authorization plugin's "
            "webhook (/authz) refuses every call",
            MIN_SECRET_LENGTH,
        )


@bp.before_request
def _check_credentials():
    _check_basic_auth(request.environ, services())


# -- reading the plugin's bodies ------------------------------------------------


def _json_object(environ):
    try:
        body = json.loads(read_body(environ, MAX_BODY).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "The body must be a JSON object.")
    return body


def _optional_string(body, name, max_length):
    value = body.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > max_length):
        raise ApiError(400, "bad_field", f"'{name}' must be a string.")
    return value or ""


def _token(body):
    """The session token named by the body, or None when the request had none
    (0.10+ still asks then). `token-key` is whichever header or GET argument
    held it (`token`, `Authorization`...): only the value matters here."""
    _optional_string(body, "token-key", 256)
    value = _optional_string(body, "token-value", MAX_TOKEN).strip()
    # Stone Web Viewer sends `Authorization: Bearer <token>`, kept verbatim.
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


def _check_common_fields(body):
    """Fields the plugin sends that play no part in the decision, still checked
    so that a malformed body is refused rather than half read."""
    for name in ("server-id", "identifier"):
        _optional_string(body, name, 256)
    labels = body.get("labels")
    if labels is not None and not (
        isinstance(labels, list) and all(isinstance(x, str) for x in labels)
    ):
        raise ApiError(400, "bad_field", "'labels' must be a list of strings.")


def _question(body):
    _check_common_fields(body)
    method, level = body.get("method"), body.get("level")
    if method not in METHODS:
        raise ApiError(400, "bad_field", "'method' must be one of " + ", ".join(METHODS) + ".")
    if level not in LEVELS:
        raise ApiError(400, "bad_field", "'level' must be one of " + ", ".join(LEVELS) + ".")
    token = _token(body)
    if level == "system":
        uri = _optional_string(body, "uri", MAX_URI)
        if not uri.startswith("/"):
            raise ApiError(400, "bad_field", "'uri' must be a path at the system level.")
        return Question(method.upper(), level, uri=uri, token=token)
    orthanc_id = _optional_string(body, "orthanc-id", MAX_ID)
    if not orthanc_id:
        raise ApiError(400, "bad_field", "'orthanc-id' is required below the system level.")
    return Question(
        method.upper(),
        level,
        orthanc_id=orthanc_id,
        dicom_uid=_optional_string(body, "dicom-uid", MAX_ID),
        token=token,
    )


# -- answers ---------------------------------------------------------------------


def _validity(config):
    """Seconds the plugin may reuse an answer: the service's decision cache,
    at most MAX_VALIDITY. Denials get it too: a study recorded a moment later
    is then seen within as many seconds."""
    return max(0, min(int(config["DECISION_CACHE_SECONDS"]), MAX_VALIDITY))


def _target(question):
    """The plugin's question as the route grammar reads it: a system-level
    URI (without its query, which the plugin does not send) or one resource."""
    if question.level == "system":
        return routes.parse(question.method, question.uri)
    return routes.plugin_target(
        question.method, question.level, question.orthanc_id, question.dicom_uid
    )


VALIDATE_PATHS = (
    "/authz",
    "/authz/",  # legacy "WebService"
    "/authz/tokens/validate",
)  # "WebServiceRootUrl"


def _validate(environ, endpoints):
    question = _question(_json_object(environ))
    decision = pipeline.answer(endpoints.services, question.token, _target(question))
    return 200, {"granted": decision.granted, "validity": _validity(endpoints.config)}, None


# The plugin's validation request, answered below Flask (authsvc/fastpath.py):
# every resource Orthanc serves waits for it. A failure is a refusal the
# plugin does not cache (validity 0); a database down, a 503 it retries.
VALIDATE = Endpoint(
    "webhook",
    _validate,
    authenticate=_check_basic_auth,
    failed=(200, {"granted": False, "validity": 0}, None),
)


# The plugin's own names for "may do anything" and "may read" (its default
# "Permissions" list opens its routes to "all" and, for reads, "view").
ADMIN_PERMISSIONS = ["all"]
READ_PERMISSIONS = ["view"]
ALL_LABELS = "*"


def _profile(principal):
    """The plugin's user profile (deploy/docker/orthanc.json sets its URL):
    admins get "all", radiologists "view", which that file's "Permissions"
    turn into routes opened without asking about resources. Everyone else
    gets no permission, and every request of theirs goes on to `validate`.

    Every profile names every label ("*"), which grants nothing by itself:
    plugin 0.11.4 reads labels only after a permission matched (its HTTP
    filter) or inside the routes it serves in Orthanc's place (/tools/find,
    /patients/{id}, /studies/{id}/series..., their labels), which run only
    once the filter let the request through. There, with "*", each is
    Orthanc's own route; without a label they refuse or empty what Orthanc's
    own plugins ask for the request they already serve (DICOMweb's lookups
    for a patient's viewer, which carry no token or the patient's)."""
    labels = [ALL_LABELS]
    if principal is None:
        return {"name": "anonymous", "permissions": [], "authorized-labels": labels}
    if principal.sees_everything:
        return {
            "name": principal.staff.username,
            "permissions": ADMIN_PERMISSIONS if principal.is_admin else READ_PERMISSIONS,
            "authorized-labels": labels,
        }
    # Patients, rule logins and shares: no permission. The name goes into
    # Orthanc's log: the kind of login only, nobody's identity.
    return {"name": principal.kind, "permissions": [], "authorized-labels": labels}


@bp.post("/user/get-profile")
def get_profile():
    body = _json_object(request.environ)
    _check_common_fields(body)
    token = _token(body)
    try:
        profile = _profile(pipeline.principal_of(services(), token))
        validity = _validity(current_app.config)
    except Exception:
        log.exception("webhook user profile failed; answering the anonymous one")
        profile, validity = _profile(None), 0
    return jsonify(validity=validity, **profile)


# The plugin's own tokens (instant links, publications) are not issued: logins
# and shares come from the service's pages, with its session tokens. The docker
# configuration sets neither URL (nor "WebServiceRootUrl", which sets both), so
# the plugin does not call these; a setup
# that does ("WebServiceRootUrl") still gets answers it can relay. Plugin
# 0.11.4 drops the client's connection on any error status here (502 through
# nginx), so these are 200s that say no: a decoded token that is invalid and
# names nothing, a created token that is empty.
DECODED_NOTHING = {"token-type": "", "error-code": "invalid", "redirect-url": "", "resources": []}
CREATED_NOTHING = {"token": "", "url": None}


@bp.post("/tokens/decode")
def decode_token():
    body = _json_object(request.environ)
    _check_common_fields(body)
    _token(body)
    return jsonify(DECODED_NOTHING)


@bp.put("/tokens/<kind>")
def create_token(kind):
    _check_common_fields(_json_object(request.environ))
    return jsonify(CREATED_NOTHING)
