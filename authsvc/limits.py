"""Limits on what a request may hold, before any route reads it.

`BodyGuard` wraps the whole service (Flask and the fast path). It reads every
request body to its end before a route runs, so that a route refusing early
(no session, an unknown ID) never leaves a body half-read: gunicorn would
close the connection with the rest unread, and nginx, still sending it, would
answer 502 instead of the service's 4xx. It keeps at most MAX_BODY_BYTES
(refused with 413 beyond that, after discarding the rest, up to DRAIN_BYTES),
and refuses JSON nested deeper than MAX_JSON_DEPTH (Python's parser recurses
and fails at ~1000 levels) and JSON holding a lone UTF-16 surrogate (`\\ud800`:
not text, and it cannot be encoded for the database or a hash). Its errors
are JSON in the page's language, like every route's.
"""

import io
import json
import re

from flask import jsonify
from flask_babel import gettext

# What the service ever reads beyond MAX_BODY_BYTES, only to discard it: nginx
# refuses bodies over 1 MiB to the service itself (client_max_body_size), so
# this is for clients of the service's port. A body left unread on a kept-alive
# connection breaks it: it is read to its end up to this length.
DRAIN_BYTES = 16 * 1024 * 1024
_CHUNK = 64 * 1024
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# A \uXXXX escape of a surrogate, high (d800-dbff) or low (dc00-dfff), with
# the backslashes before it (an even number of them escapes the backslash).
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u[dD][89a-fA-F][0-9a-fA-F]{2}")


class BadInput(Exception):
    def __init__(self, status, code):
        super().__init__(code)
        self.status = status
        self.code = code


def message(code):
    """The text of a refusal, in the current request's language."""
    if code == "too_large":
        return gettext("The request is too large.")
    if code == "bad_text":
        return gettext("The request holds something that is not text.")
    return gettext("The request is not valid JSON, or is nested too deeply.")


def json_depth(data):
    """How deeply arrays and objects nest in JSON text (bytes), strings
    skipped."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def holds_surrogate(value):
    """A lone surrogate anywhere in a parsed JSON value (keys too)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(holds_surrogate(k) or holds_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(holds_surrogate(v) for v in value)
    return False


def check_json_text(data, max_depth):
    """Raise BadInput for JSON text too deep, or holding a lone surrogate.
    Text that is not JSON at all is left to the route (its own 400)."""
    # Fewer brackets than the limit cannot nest deeper (counted in C: cheap).
    if data.count(b"[") + data.count(b"{") > max_depth and json_depth(data) > max_depth:
        raise BadInput(400, "bad_json")
    if b"\\u" in data and any(len(m.group(1)) % 2 for m in _SURROGATE_ESCAPE.finditer(data)):
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            return
        if holds_surrogate(parsed):
            raise BadInput(400, "bad_text")


def read_whole_body(environ, keep):
    """The body, read to its end (up to DRAIN_BYTES): (bytes kept, too long?)."""
    stream = environ["wsgi.input"]
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
    if length < 0 and not (chunked and environ.get("wsgi.input_terminated")):
        return None, False  # no body, or one this server cannot frame
    remaining = length if length >= 0 else DRAIN_BYTES + 1
    remaining = min(remaining, DRAIN_BYTES + 1)
    parts, kept, total = [], 0, 0
    while remaining > 0:
        part = stream.read(min(_CHUNK, remaining))
        if not part:
            break
        total += len(part)
        remaining -= len(part)
        if kept <= keep:
            parts.append(part)
            kept += len(part)
    too_long = total > keep or (length >= 0 and length > keep)
    return b"".join(parts), too_long


class BodyGuard:
    """WSGI middleware in front of the whole service (see the module's text)."""

    def __init__(self, app, flask_app, quiet_paths=(), larger=()):
        """`quiet_paths`: routes that answer malformed input themselves and
        must (the Lua filter's question: always 200, a denial); they get an
        empty body instead of a refusal. `larger`: (compiled pattern of a
        path, bytes) of the routes that take more than MAX_BODY_BYTES (a
        report's PDF), still under nginx's 1 MiB."""
        self.app = app
        self.flask_app = flask_app
        self.quiet_paths = frozenset(quiet_paths)
        self.larger = tuple(larger)

    def limit(self, environ):
        path = environ.get("PATH_INFO", "")
        limit = int(self.flask_app.config["MAX_BODY_BYTES"])
        for pattern, size in self.larger:
            if environ.get("REQUEST_METHOD") == "POST" and pattern.fullmatch(path):
                limit = max(limit, size)
        return limit

    def __call__(self, environ, start_response):
        config = self.flask_app.config
        try:
            data, too_long = read_whole_body(environ, self.limit(environ))
            if data is not None:
                if too_long:
                    raise BadInput(413, "too_large")
                environ["wsgi.input"] = io.BytesIO(data)
                environ["CONTENT_LENGTH"] = str(len(data))
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                content_type = environ.get("CONTENT_TYPE", "").lower()
                if not content_type.startswith(_FORMS):
                    check_json_text(data, int(config["MAX_JSON_DEPTH"]))
        except BadInput as exc:
            if environ.get("PATH_INFO") in self.quiet_paths:
                environ["wsgi.input"] = io.BytesIO(b"")
                environ["CONTENT_LENGTH"] = "0"
                environ.pop("HTTP_TRANSFER_ENCODING", None)
                return self.app(environ, start_response)
            return self.refuse(environ, start_response, exc)
        return self.app(environ, start_response)

    def refuse(self, environ, start_response, exc):
        environ["wsgi.input"] = io.BytesIO(b"")
        environ["CONTENT_LENGTH"] = "0"
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        with self.flask_app.request_context(environ):
            response = jsonify(error=exc.code, message=message(exc.code))
            response.status_code = exc.status
            response.headers["Cache-Control"] = "no-store"
            return response(environ, start_response)
