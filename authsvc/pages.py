"""The first pages: the splash page with the patients' login (where the QR code
of a slip lands, its fragment filling the form), the staff login, and logout."""

from flask import Blueprint, current_app, redirect, request, url_for
from flask_babel import gettext

from . import audit
from .ui import csrf_ok, error_page, harden, render_page
from .web import current_principal, request_token, services

bp = Blueprint("pages", __name__)
bp.after_request(harden)


@bp.get("/")
def splash():
    return render_page("splash.html")


@bp.get("/staff/login")
def staff_login():
    principal = current_principal()
    if principal is not None and principal.sees_everything:
        return redirect(url_for("staff.dashboard"))
    return render_page("staff_login.html")


@bp.post("/logout")
def logout():
    """The logout button of every page: a form (it works without JavaScript)
    with the session's CSRF token. Ends the session on the server at once."""
    token = request_token()
    if token:
        if not csrf_ok(request.form.get("csrf")):
            return error_page(
                400, gettext("This form has expired. Go back, reload the page and try again.")
            )
        principal = current_principal()
        if principal is not None:
            audit.record("logout", actor=principal.audit_name, address=request.remote_addr)
        services().sessions.end(token)
    # The login page then says that the session is closed (once: login.js
    # drops the parameter from the address).
    response = redirect(url_for("pages.splash", logged_out=1), 303)
    response.delete_cookie(current_app.config["SESSION_COOKIE_NAME"], path="/")
    return response
