"""The first page anyone sees: the splash warning and the login form.
(The full portal, slips and dashboard come with the pages issue.)"""

from flask import Blueprint, render_template

bp = Blueprint("pages", __name__)


@bp.get("/")
def splash():
    response = render_template("splash.html")
    return response, 200, {"Cache-Control": "no-store"}
