"""nginx's `auth_request` check, in front of every request to Orthanc in both
deployments (the trial launcher's nginx, deploy/trial.py, and the docker
one, deploy/docker/locations.inc).

It is the one lock that sees the whole request: method, path and query
string (`?resources=`, QIDO parameters), which the Lua filter cannot see and
the Authorization plugin does not check; and, asked before the request
reaches Orthanc, it alone can ask Orthanc which studies hold a DICOMweb
request's StudyInstanceUID (pipeline.orthanc_agrees). The Lua filter (packaged Orthanc)
and the plugin (docker) stay behind it as second locks, each failing closed
on its own.

nginx sends the original method and request line, and the token it forwards
to Orthanc (`token`: the session cookie, else the client's `token` header,
else `Authorization: Bearer`, else `?token=`), so that the check and Orthanc
see one and the same principal. Answered below Flask (authsvc/fastpath.py):
a viewer's every image waits for it."""

from .decision import pipeline, routes
from .fastpath import Endpoint

GATE_PATH = "/api/gate"
ORTHANC_PREFIX = "/orthanc"
MAX_URI = 4096
MAX_TOKEN = 1024


REFUSED = (403, None, None)


def _check(environ, endpoints):
    """204 when granted, 403 otherwise (nginx answers the client 403 too)."""
    method = environ.get("HTTP_X_ORIGINAL_METHOD", "")
    uri = environ.get("HTTP_X_ORIGINAL_URI", "")
    token = environ.get("HTTP_TOKEN", "").strip() or None
    if (
        not uri.startswith(ORTHANC_PREFIX + "/")
        or len(uri) > MAX_URI
        or (token and len(token) > MAX_TOKEN)
    ):
        return REFUSED
    target = routes.parse(method, uri[len(ORTHANC_PREFIX) :])
    decision = pipeline.answer(endpoints.services, token, target, environ.get("REMOTE_ADDR", ""))
    if decision.granted and pipeline.orthanc_agrees(endpoints.services, target, decision):
        return 204, None, None
    return REFUSED


# Any method: auth_request subrequests are GETs, and the original method
# travels in a header. A failure or a database down refuses.
GATE = Endpoint(
    "nginx check", _check, methods=("GET", "HEAD", "POST"), unavailable=REFUSED, failed=REFUSED
)
