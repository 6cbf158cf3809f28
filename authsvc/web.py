"""Request plumbing shared by the blueprints: the session of a request, JSON bodies."""

from flask import current_app, g, request

from .errors import ApiError


def services():
    return current_app.extensions["authsvc"]


def request_token():
    """The session token: the cookie pages use, or `Authorization: Bearer` for scripts."""
    token = request.cookies.get(current_app.config["SESSION_COOKIE_NAME"])
    auth = request.headers.get("Authorization", "")
    if not token and auth.startswith("Bearer "):
        token = auth[len("Bearer "):].strip()
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
    if principal.kind != "staff":
        raise ApiError(403, "forbidden", "Only staff may do this.")
    return principal


def json_body():
    """The request's JSON object. Requiring application/json on every write is
    also the CSRF guard of the API: a cross-site form cannot send it."""
    if not request.is_json:
        raise ApiError(415, "json_required", "Send a JSON body (Content-Type: application/json).")
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "The body must be a JSON object.")
    return body


def string_field(body, name, max_length=256):
    value = body.get(name)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise ApiError(400, "bad_field", f"'{name}' must be a non-empty string.")
    return value
