"""Request plumbing shared by the blueprints: the session of a request, JSON bodies."""

from flask import current_app, g, request
from flask_babel import gettext

from .errors import ApiError
from .limits import holds_surrogate


def services():
    return current_app.extensions["authsvc"]


def request_token():
    """The session token: the cookie pages use, or `Authorization: Bearer` for scripts."""
    token = request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
    auth = request.headers.get("Authorization", "")
    if not token and auth.startswith("Bearer "):
        token = auth[len("Bearer ") :].strip()
    return token


def current_principal():
    if "principal" not in g:
        g.principal = services().sessions.resolve(request_token())
    return g.principal


def require_principal():
    principal = current_principal()
    if principal is None:
        raise ApiError(401, "not_logged_in", "Log in first.")
    return principal


def require_staff():
    principal = require_principal()
    if not principal.sees_everything:
        raise ApiError(403, "forbidden", "Only staff may do this.")
    return principal


def staff_or_error(admin=False):
    """The staff member of a request, as the pages' JSON routes want it: 401
    without a session, 403 for another kind of login (or a radiologist where
    `admin`), the message in the request's language."""
    principal = current_principal()
    if principal is None:
        raise ApiError(401, "not_logged_in", gettext("Your session has ended. Log in again."))
    if not principal.sees_everything or (admin and not principal.is_admin):
        raise ApiError(403, "forbidden", gettext("You may not do this."))
    return principal


def json_body():
    """The request's JSON object. Requiring application/json on every write is
    also the CSRF guard of the API: a cross-site form cannot send it."""
    if not request.is_json:
        raise ApiError(
            415, "json_required", gettext("Send a JSON body (Content-Type: application/json).")
        )
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested too deeply (authsvc/limits.py refuses it first)
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", gettext("The body must be a JSON object."))
    if _holds_nul(body):
        raise ApiError(400, "bad_json", gettext("The body holds a NUL character."))
    # A lone surrogate ("\ud800") is not text: no key, hash or column takes it.
    if holds_surrogate(body):
        raise ApiError(400, "bad_text", gettext("The request holds something that is not text."))
    return body


def _holds_nul(value):
    """No text people type holds NUL, and PostgreSQL refuses it in a query:
    refused as bad input here rather than failing deep inside."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False


def refuse_nul_in_url():
    """Before every request: a NUL in the path or the query is bad input."""
    if (
        "\x00" in request.path
        or b"%00" in request.query_string.lower()
        or "\x00" in request.query_string.decode("latin-1")
    ):
        raise ApiError(400, "bad_request", "The address holds a NUL character.")


# The largest integer SQLite and PostgreSQL store (BIGINT): a larger one in a
# query would fail in the database driver, not as bad input.
MAX_INT = 2**63 - 1


def int_arg(name, default, low, high):
    """An integer argument of the query string, `low` to `high` (values
    outside are brought inside); 400 when it is not a number or is beyond
    what a database column holds."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip()) if len(raw) <= 20 else None
    except ValueError:
        value = None
    if value is None or abs(value) > MAX_INT:
        raise ApiError(400, "bad_field", gettext("'%(name)s' must be a whole number.", name=name))
    return min(max(value, low), high)


def string_field(body, name, max_length=256):
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ApiError(400, "bad_field", f"'{name}' must be a non-empty string.")
    return value
