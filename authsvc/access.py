"""The one access decision: may this principal make this request to Orthanc?

Every adapter (the Lua request filter today, the Authorization plugin's
webhook later) turns its input into a call of `decide`. Paths are Orthanc's
own, without nginx's /orthanc prefix and without the query string (Lua never
sees it). Anything not recognised is denied for everyone but admins.

Decisions read only the service's database, never Orthanc: the Lua filter
holds Orthanc's Lua lock while it waits, and Orthanc's REST API needs that
lock for every request, so a call back into Orthanc would deadlock.
"""

import re
from dataclasses import dataclass, field

from .models import Resource, Study

_OID = r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}"
_UID = r"[0-9]+(?:\.[0-9]+)*"

# Orthanc's resources by Orthanc ID: any GET below them reads that resource.
ORTHANC_RESOURCE = re.compile(rf"^/(patients|studies|series|instances)/({_OID})(?:/[A-Za-z0-9._-]+)*$")
# The Orthanc Web Viewer's data routes.
WEB_VIEWER_SERIES = re.compile(rf"^/web-viewer/(?:series|is-stable-series)/({_OID})$")
WEB_VIEWER_INSTANCE = re.compile(rf"^/web-viewer/instances/[A-Za-z0-9]+-({_OID})_[0-9]+$")
# The web viewer's own HTML/JS/CSS: no patient data in them.
WEB_VIEWER_ASSET = re.compile(r"^/web-viewer/(?:app|libs)(?:/[A-Za-z0-9._-]+)+$")
# DICOMweb routes inside one study (WADO-RS, and QIDO restricted to the study).
DICOMWEB_STUDY = re.compile(
    rf"^/dicom-web/studies/({_UID})"
    rf"(?:/series/({_UID})(?:/instances/({_UID}))?)?"
    r"(?:/(?:metadata|rendered|thumbnail|series|instances|frames(?:/[0-9,]+)?"
    r"(?:/rendered)?|bulk(?:/[A-Za-z0-9._-]+)*))?$")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9/._,-]*$")

STATIC_KEY = "asset:web-viewer"


@dataclass
class Decision:
    granted: bool
    reason: str
    # What the grant covers, so that an adapter may cache it: "all" (any
    # request), "get" (any GET) or "keys" (GETs naming only these IDs/UIDs).
    scope: str = "keys"
    keys: list = field(default_factory=list)


DENY_NO_SESSION = Decision(False, "no session")


def study_keys(study):
    """Every identifier under which Orthanc routes may name this study."""
    keys = [study.orthanc_id, study.study_uid]
    for res in Resource.select(Resource.orthanc_id, Resource.uid).where(Resource.study == study):
        keys.append(res.orthanc_id)
        if res.uid:
            keys.append(res.uid)
    return keys


def _study_of_orthanc_id(level, orthanc_id):
    if level == "studies":
        return Study.get_or_none(Study.orthanc_id == orthanc_id)
    expected = "series" if level == "series" else "instance"
    res = Resource.get_or_none((Resource.orthanc_id == orthanc_id) & (Resource.level == expected))
    return res.study if res else None


def _study_of_uids(principal, study_uid, series_uid, sop_uid):
    """The study named by a DICOMweb path, if every UID in it belongs to it.
    A StudyInstanceUID shared by several studies (a modality's mistake, or a
    forged file) is granted only to whom may see all of them: the DICOMweb
    plugin picks one of them by itself."""
    studies = list(Study.select().where(Study.study_uid == study_uid))
    if not studies or not all(may_see_study(principal, s) for s in studies):
        return None
    for study in studies:
        if all(not uid or Resource.select().where(
                (Resource.study == study) & (Resource.uid == uid)
                & (Resource.level == level)).exists()
               for uid, level in ((series_uid, "series"), (sop_uid, "instance"))):
            return study
    return None


def visible_studies(principal):
    """The studies a principal may see (the same rule as `decide`)."""
    if principal.sees_everything:
        return Study.select()
    if principal.kind == "patient":
        return Study.select().where(Study.patient == principal.patient)
    return Study.select().where(False)


def may_see_study(principal, study):
    if study is None:
        return False
    if principal.sees_everything:
        return True
    return principal.kind == "patient" and study.patient_id == principal.patient.id


def decide(principal, method, path):
    """Decide one request to Orthanc. `method` is upper-case HTTP."""
    if principal is None:
        return DENY_NO_SESSION
    if principal.kind == "staff":
        if principal.is_admin:
            return Decision(True, "admin", scope="all")
        if method == "GET":
            return Decision(True, "staff may read everything", scope="get")
        return Decision(False, "only admins may change Orthanc")
    # Patients (and, later, rule logins and shares): reads of their own studies only.
    if method != "GET":
        return Decision(False, "read-only access")
    if not SAFE_PATH.fullmatch(path) or "//" in path or "/." in path:
        return Decision(False, "unexpected characters in path")
    if WEB_VIEWER_ASSET.fullmatch(path):
        return Decision(True, "viewer asset", keys=[STATIC_KEY])
    study = None
    m = ORTHANC_RESOURCE.fullmatch(path)
    if m:
        level, oid = m.groups()
        if level == "patients":
            if principal.kind == "patient" and principal.patient.orthanc_id == oid:
                return Decision(True, "own patient record", keys=[oid])
            return Decision(False, "not this patient")
        study = _study_of_orthanc_id(level, oid)
    elif (m := WEB_VIEWER_SERIES.fullmatch(path)):
        study = _study_of_orthanc_id("series", m.group(1))
    elif (m := WEB_VIEWER_INSTANCE.fullmatch(path)):
        study = _study_of_orthanc_id("instances", m.group(1))
    elif (m := DICOMWEB_STUDY.fullmatch(path)):
        study = _study_of_uids(principal, *m.groups())
    else:
        return Decision(False, "route not open to patients")
    if not may_see_study(principal, study):
        return Decision(False, "not one of this login's studies")
    return Decision(True, "own study", keys=study_keys(study))
