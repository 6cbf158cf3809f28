"""Plumbing shared by the HTML pages: headers, the CSRF token of forms, and
rendering with what every page shows (hospital, language switch, logout).

Writes from the pages' JavaScript go to JSON routes, whose Content-Type
requirement keeps other sites' forms out (authsvc/web.py). The only HTML form
that writes, logout, carries a token tied to the session: an HMAC of the
session token under the secret key, checked in constant time.
"""

import hashlib
import hmac

from flask import current_app, render_template

from . import publicurl
from .web import current_principal, request_token

# Scripts and styles come from /static only: no inline script can run, so a
# name in a DICOM tag can never become code in a page.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


def harden(response):
    """Headers of every page and JSON route of the people's side."""
    # Patient data and passwords: never kept by a browser (the back button
    # after logout asks the server again) or a proxy.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def csrf_token():
    token = request_token()
    if not token:
        return ""
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, b"csrf\0" + token.encode(), hashlib.sha256).hexdigest()


def csrf_ok(given):
    expected = csrf_token()
    return (
        bool(expected)
        and isinstance(given, str)
        and hmac.compare_digest(given.encode(), expected.encode())
    )


def render_page(template, status=200, **context):
    principal = current_principal()
    return render_template(
        template,
        principal=principal,
        csrf=csrf_token(),
        hospital=current_app.config["HOSPITAL_NAME"],
        public_url=current_app.config["PUBLIC_URL"],
        public_url_unusable=publicurl.unusable(current_app.config["PUBLIC_URL"]),
        **context,
    ), status


def error_page(status, message):
    return render_page("error.html", status=status, message=message)
