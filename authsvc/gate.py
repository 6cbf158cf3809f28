"""nginx's `auth_request` check, for the routes the Authorization plugin
leaves open (docker deployment; see deploy/docker/nginx.conf):

- QIDO searches without a UID (/dicom-web/studies, /series, /instances):
  plugin 0.9.2+ on Orthanc 1.10.1 lets them through whatever it is told;
- /patients/... with "CheckedLevel": "studies": the plugin checks no level
  there, and some versions then let the URI through.

nginx asks with the client's cookie and the original method and URI; the
answer is the one decision function's, so these routes are decided exactly as
the Lua filter decides them on packaged Orthanc."""

from urllib.parse import urlsplit

from flask import Blueprint, request

from . import access
from .web import current_principal

bp = Blueprint("gate", __name__, url_prefix="/api/gate")

ORTHANC_PREFIX = "/orthanc"


@bp.get("")
def check():
    method = request.headers.get("X-Original-Method", "").upper()
    method = "GET" if method in ("HEAD", "OPTIONS") else method
    path = urlsplit(request.headers.get("X-Original-URI", "")).path
    if not path.startswith(ORTHANC_PREFIX + "/") or method not in access.METHODS:
        return "", 403
    decision = access.decide(current_principal(), method, path[len(ORTHANC_PREFIX):])
    return ("", 204) if decision.granted else ("", 403)
