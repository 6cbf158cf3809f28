"""deploy/docker/orthanc.json's "Permissions", read as plugin 0.11.4 reads them.

The plugin is in no package registry, so CI cannot run it: these tests read
the list the way its source does (Plugin/PermissionParser.cpp, Parse; and
Plugin.cpp, FilterHttpRequests), as checked against the real plugin by hand
(docs/plugin-and-docker.md, "What plugin 0.11.4 does"):
  - for the request's method (HEAD reaches the plugin as GET), the first
    pattern whose regex matches the whole path (no query string) names the
    permissions; the token's profile must hold one of them, and an empty
    list is everyone's;
  - a request no pattern names, or whose profile holds none of them, goes on
    to the validation (the resource checks), as without a profile URL.
So: admins ("all") must be named on every route, radiologists ("view")
exactly where the decision function grants them, and nobody else anywhere.
"""

import re

import pytest

from authsvc.decision import policy, routes
from authsvc.decision.principals import BY_KIND, StaffPrincipal
from authsvc.models import StaffUser
from authsvc.webhook import _profile
from tests.docker_files import plugin_config
from tests.route_matrix import MATRIX

OID = "0473d9ec-1971156a-8a763313-b599e788-fe57b70d"
PLUGIN_METHODS = ("get", "post", "put", "delete")
# Routes beyond the route matrix: Orthanc's, its plugins' (DICOMweb, Web
# Viewer, Stone) and the Authorization plugin's own (it registers them when a
# profile URL is set).
MORE_ROUTES = [
    "/",
    "/system",
    "/statistics",
    "/jobs",
    f"/jobs/{OID}",
    "/exports",
    "/peers",
    "/modalities",
    "/modalities/X/store",
    "/queries",
    "/tools/reset",
    "/tools/shutdown",
    "/tools/create-archive",
    "/tools/create-media",
    "/tools/create-media-extended",
    "/tools/create-dicom",
    "/tools/execute-script",
    "/tools/generate-uid",
    "/tools/labels",
    "/tools/count-resources",
    "/tools/bulk-delete",
    "/tools/bulk-modify",
    "/tools/find/",
    "/tools/lookup/x",
    "/tools/finder",
    "/instances",
    f"/patients/{OID}",
    f"/patients/{OID}/studies",
    f"/patients/{OID}/archive",
    f"/patients/{OID}/protected",
    f"/studies/{OID}/modify",
    f"/studies/{OID}/anonymize",
    f"/studies/{OID}/labels/x",
    f"/studies/{OID}/metadata/1024",
    f"/instances/{OID}/file",
    "/app/explorer.html",
    "/app/explorer.js",
    "/ui/app/",
    "/web-viewer/app/viewer.html",
    "/stone-webviewer/index.html",
    "/dicom-web/studies",
    "/dicom-web/servers",
    "/auth/user/profile",
    "/auth/settings/roles",
    "/auth/settings/permissions",
    "/auth/tokens/decode",
    "/auth/tokens/viewer-instant-link",
    "/auth/audit-logs",
]


def plugin_permissions():
    return plugin_config()["Permissions"]


def named_permissions(method, path):
    """The permissions the plugin's first matching pattern names, or None."""
    method = "get" if method.lower() == "head" else method.lower()
    for entry in plugin_permissions():
        if entry[0].lower() == method and re.fullmatch(entry[1], path):
            return {p for p in entry[2].split("|") if p}
    return None


def granted_by_permission(profile, method, path):
    named = named_permissions(method, path)
    if named is None:
        return False
    return not named or bool(named & set(profile["permissions"]))


def all_requests():
    paths = {re.sub(r"\{[^}]*\}", OID, route).split("?")[0] for _, route, _ in MATRIX}
    paths.update(MORE_ROUTES)
    return [
        (method, path)
        for path in sorted(paths)
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE")
    ]


def staff(role):
    return StaffPrincipal(
        1, staff=StaffUser(username="u", role=role, active=True, password_hash="")
    )


def test_the_list_names_only_staff_permissions_and_every_request():
    """No entry is empty (everyone's) or names a permission no profile has;
    each method ends on a catch-all, so every request is named once."""
    entries = plugin_permissions()
    for entry in entries:
        assert len(entry) >= 3 and entry[0] in PLUGIN_METHODS, entry
        permissions = entry[2].split("|")
        assert permissions and all(permissions), entry
        assert set(permissions) <= {"all", "view"}, entry
        re.compile(entry[1])
    for method in PLUGIN_METHODS:
        last = [e for e in entries if e[0] == method][-1]
        assert last[1] == ".*", method
    for method, path in all_requests():
        assert named_permissions(method, path), (method, path)


def test_admins_get_every_request():
    admin = _profile(staff("admin"))
    refused = [(m, p) for m, p in all_requests() if not granted_by_permission(admin, m, p)]
    assert not refused


def test_radiologists_get_exactly_what_the_decision_function_gives_them():
    radiologist = staff("radiologist")
    profile = _profile(radiologist)
    for method, path in all_requests():
        decided = policy.decide(radiologist, routes.parse(method, path)).granted
        assert granted_by_permission(profile, method, path) == decided, (method, path)


@pytest.mark.parametrize("kind", ["patient", "rule", "share", None])
def test_nobody_else_gets_anything_by_permission(kind):
    """Patients, rule logins, shares and requests without a session hold no
    permission: each of their requests is asked about (the validation)."""
    profile = _profile(BY_KIND[kind](1) if kind else None)
    granted = [(m, p) for m, p in all_requests() if granted_by_permission(profile, m, p)]
    assert not granted
