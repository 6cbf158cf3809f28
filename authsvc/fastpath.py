"""The two decision endpoints, answered below Flask.

Every request Orthanc serves waits for one of these answers: the Lua filter's
question (`/internal/authorize`, asked under Orthanc's Lua lock, so it
serializes the whole server) and the Authorization plugin's
(`/authz/tokens/validate` and the legacy `/authz/`). Flask's routing, hooks,
request context and response objects were a quarter to a third of the
service's CPU per decision (bench B2), so these are answered here, straight
from the WSGI environ. Every other path goes on to Flask untouched.

An Endpoint's handler takes (environ, endpoints) and returns (status, JSON
object or None for no body, extra headers), or raises ApiError, answered with
the same error body as Flask's routes (errors.py). Everything around it
(authentication, the database, failures) is DecisionEndpoints' own.

Three endpoints are answered here: the Lua filter's question, the plugin's
validation, and nginx's auth_request check (authsvc/gate.py), which stands in
front of every request to Orthanc.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import peewee

from . import fastsql
from .db import database
from .errors import ApiError

log = logging.getLogger(__name__)

# The rules files are stat'ed at most this often on the decision paths: two
# stat calls per decision were 2 % of B2's CPU, and a changed rules file is
# applied by the background worker anyway, a moment later.
RULES_CHECK_SECONDS = 0.5


@dataclass(frozen=True)
class Endpoint:
    """One decision endpoint and what its callers understand when it fails.

    The lifecycle is DecisionEndpoints' alone: route and method, then
    `authenticate` (raises ApiError), the database (`unavailable` answered
    when it cannot be opened), `handle`, and the connection handed back.
    An ApiError from `handle` is answered as Flask's routes answer it; any
    other exception is logged and answered with `failed`, a refusal in each
    caller's own terms (Lua's HttpPost cannot read an error status, the
    plugin turns anything but 200 into a 403, nginx's check reads 403)."""

    name: str
    handle: Callable
    methods: tuple = ("POST",)
    authenticate: Callable = None
    unavailable: tuple = (
        503,
        {
            "error": "database_unavailable",
            "message": "The service's database is unavailable; try again in a moment.",
        },
        {"Retry-After": "5"},
    )
    failed: tuple = (403, None, None)


class DecisionEndpoints:
    """WSGI middleware: a registered path is answered by its Endpoint (for
    the methods it was registered with; another is a 405); anything else
    goes to `wsgi_app`."""

    def __init__(self, wsgi_app, flask_app, close_after):
        self.wsgi_app = wsgi_app
        self.flask_app = flask_app
        self.close_after = close_after  # PostgreSQL: hand the connection back to the pool
        self.routes = {}
        self._rules_checked = 0.0

    def route(self, path, endpoint):
        self.routes[path] = endpoint

    def _prepare(self, services):
        """The database connection of this thread, and the rules watcher's
        cheap check (decisions never wait for a sync: it wakes the worker)."""
        database.connect(reuse_if_open=True)
        now = time.monotonic()
        if now - self._rules_checked >= RULES_CHECK_SECONDS:
            self._rules_checked = now
            services.rules.check(blocking=False, wake=services.ingest_worker.wake)

    def __call__(self, environ, start_response):
        endpoint = self.routes.get(environ.get("PATH_INFO"))
        if endpoint is None:
            return self.wsgi_app(environ, start_response)
        if environ.get("REQUEST_METHOD") not in endpoint.methods:
            return reply(
                start_response,
                405,
                {
                    "error": "method_not_allowed",
                    "message": " or ".join(endpoint.methods) + " only.",
                },
                {"Allow": ", ".join(endpoint.methods)},
            )
        try:
            status, data, headers = self._answer(endpoint, environ)
        finally:
            fastsql.forget_prefetched()
            self._release()
        return reply(start_response, status, data, headers)

    def _answer(self, endpoint, environ):
        services = self.services
        try:
            if endpoint.authenticate is not None:
                endpoint.authenticate(environ, services)
        except ApiError as exc:
            return exc.status, exc.body(), exc.headers
        try:
            self._prepare(services)
        except peewee.PeeweeException as exc:
            log.error("database unavailable: %s", exc)
            return endpoint.unavailable
        try:
            return endpoint.handle(environ, self)
        except ApiError as exc:
            return exc.status, exc.body(), exc.headers
        except Exception:
            # Never the request in the log: it holds a token.
            log.exception("%s decision failed; denying", endpoint.name)
            return endpoint.failed

    def _release(self):
        """SQLite keeps its connection per thread; PostgreSQL's goes back to
        the pool (authsvc/db.py), which hands it out again without a ping."""
        if self.close_after and not database.is_closed():
            database.close()

    @property
    def services(self):
        return self.flask_app.extensions["authsvc"]

    @property
    def config(self):
        return self.flask_app.config


def read_body(environ, limit):
    """The raw body, sent with Content-Length or chunked (gunicorn decodes a
    chunked body and says so with `wsgi.input_terminated`). ApiError 413 when
    it is longer than `limit`, 400 when it is chunked and this server cannot
    decode it (Werkzeug's development server)."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        length = -1
        if not environ.get("wsgi.input_terminated"):
            raise ApiError(
                400,
                "chunked_unsupported",
                "This server cannot read chunked bodies; run the service under gunicorn.",
            )
    if length > limit:
        raise ApiError(413, "too_large", "The body is too large.")
    if length < 0 and not environ.get("wsgi.input_terminated"):
        return b""  # no length, not chunked: no body
    stream = environ["wsgi.input"]
    want = length if length >= 0 else limit + 1
    data = b""
    # A decoded chunked stream may return fewer bytes than asked: read to the end.
    while len(data) < want:
        part = stream.read(want - len(data))
        if not part:
            break
        data += part
    if len(data) > limit:
        raise ApiError(413, "too_large", "The body is too large.")
    return data


# The plugin's answers are a handful of small objects ({"granted", "validity"}),
# the same ones thousands of times a second: encoded once each.
_encoded = {}
_STATUS_LINES = {}


def _encode(data):
    key = tuple(data.items()) if type(data) is dict and len(data) <= 3 else None
    if key is not None and all(type(v) in (bool, int) for _, v in key):
        payload = _encoded.get(key)
        if payload is None:
            if len(_encoded) > 64:
                _encoded.clear()
            payload = _encoded[key] = json.dumps(data, separators=(",", ":")).encode()
        return payload
    return json.dumps(data, separators=(",", ":")).encode()


def reply(start_response, status, data, headers=None):
    """A JSON answer, or an empty one when `data` is None."""
    payload = b"" if data is None else _encode(data)
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"{status} {HTTPStatus(status).phrase}"
    content = [("Content-Type", "application/json")] if data is not None else []
    start_response(
        line,
        content
        + [("Content-Length", str(len(payload))), ("Cache-Control", "no-store")]
        + list((headers or {}).items()),
    )
    return [payload]
