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

from . import fastsql
from .models import Resource, RuleMatch, Study

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
# HEAD and OPTIONS reach Orthanc's filters as GET; anything else is refused.
METHODS = {"GET", "POST", "PUT", "DELETE"}


@dataclass
class Decision:
    granted: bool
    reason: str
    # What the grant covers, so that an adapter may cache it: "all" (any
    # request), "get" (any GET) or "keys" (GETs naming only these IDs/UIDs).
    scope: str = "keys"
    keys: list = field(default_factory=list)
    study: object = None  # the study granted, for the audit log


DENY_NO_SESSION = Decision(False, "no session")


# study id -> (updated_at, keys): every decision about a study returns its
# keys, and a CT has hundreds. Ingest bumps updated_at when it rewrites a
# study's resources, which retires the cached entry.
_keys_cache = {}
_KEYS_CACHE_SIZE = 2000


def study_keys(study):
    """Every identifier under which Orthanc routes may name this study."""
    cached = _keys_cache.get(study.id)
    if cached is not None and cached[0] == study.updated_at:
        return cached[1]
    keys = [study.orthanc_id, study.study_uid]
    for orthanc_id, uid in (Resource.select(Resource.orthanc_id, Resource.uid)
                            .where(Resource.study == study).tuples()):
        keys.append(orthanc_id)
        if uid:
            keys.append(uid)
    if len(_keys_cache) >= _KEYS_CACHE_SIZE:
        _keys_cache.clear()
    _keys_cache[study.id] = (study.updated_at, keys)
    return keys


# What a decision reads of a study (who may see it, its keys, the audit
# entry): a Study built from these only, by the queries below. Reading and
# converting every column (descriptions, tag values as JSON) was a tenth of a
# decision's CPU.
DECISION_FIELDS = (Study.id, Study.orthanc_id, Study.study_uid, Study.patient, Study.updated_at)


def _study_query():
    return Study.select(*DECISION_FIELDS).where(Study.orthanc_id == "?")


def _lookup_by_orthanc_id(level, orthanc_id):
    """The compiled lookup of the study holding an Orthanc resource, for a
    route's level ("studies", "series", "instances"): (name, build, params)."""
    if level == "studies":
        return "study", _study_query, (orthanc_id,)
    expected = "series" if level == "series" else "instance"
    return "study-of-resource", _study_of_resource_query, (orthanc_id, expected)


def _study_of_orthanc_id(level, orthanc_id):
    name, build, params = _lookup_by_orthanc_id(level, orthanc_id)
    row = fastsql.fetch_one(name, build, *params)
    return fastsql.instance(Study, row, DECISION_FIELDS) if row else None


def study_lookup_for_path(path):
    """The lookup `decide` will run for this path, if one (for
    fastsql.prefetch, which runs it with the session's in one round trip)."""
    m = ORTHANC_RESOURCE.fullmatch(path)
    if m:
        return None if m.group(1) == "patients" else _lookup_by_orthanc_id(*m.groups())
    if (m := WEB_VIEWER_SERIES.fullmatch(path)):
        return _lookup_by_orthanc_id("series", m.group(1))
    if (m := WEB_VIEWER_INSTANCE.fullmatch(path)):
        return _lookup_by_orthanc_id("instances", m.group(1))
    return None


def study_lookup_for_resource(level, orthanc_id):
    """The lookup `decide_resource` will run for the plugin's question, if one."""
    if not isinstance(orthanc_id, str) or not re.fullmatch(_OID, orthanc_id):
        return None
    if level == "study":
        return _lookup_by_orthanc_id("studies", orthanc_id)
    if level in ("series", "instance"):
        return "study-and-uid-of-resource", _study_and_uid_query, (orthanc_id, level)
    return None


def _study_and_uid_query():
    return (Study.select(*DECISION_FIELDS, Resource.uid).join(Resource)
            .where((Resource.orthanc_id == "?") & (Resource.level == "?")))


def _study_of_resource_query():
    return (Study.select(*DECISION_FIELDS).join(Resource)
            .where((Resource.orthanc_id == "?") & (Resource.level == "?")))


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
    if principal.kind == "rule":
        return Study.select().where(Study.id.in_(
            RuleMatch.select(RuleMatch.study).where(RuleMatch.login == principal.rule_login)))
    if principal.kind == "share":
        share = principal.share
        query = Study.select().where(Study.patient == share.patient_id)
        return query.where(Study.id == share.study_id) if share.study_id else query
    return Study.select().where(False)


def _rule_match_query():
    # (login, study) is unique: one row at most, no LIMIT needed.
    return RuleMatch.select(RuleMatch.id).where((RuleMatch.login == "?")
                                                & (RuleMatch.study == "?"))


def may_see_study(principal, study):
    if study is None:
        return False
    if principal.sees_everything:
        return True
    if principal.kind == "patient":
        return study.patient_id == principal.patient.id
    if principal.kind == "rule":
        return fastsql.fetch_one("rule-match", _rule_match_query,
                                 principal.rule_login.id, study.id) is not None
    if principal.kind == "share":
        share = principal.share
        return study.patient_id == share.patient_id and share.study_id in (None, study.id)
    return False


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
    # Patients, rule logins and shares: reads of the studies they may see only.
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
            # The patient level lists every study of the patient: only the
            # patient themself, never a rule login or share that sees some.
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
    return Decision(True, "a study this login may see", keys=study_keys(study), study=study)


# -- The Authorization plugin's questions: one resource named by level and ID --

PLUGIN_LEVELS = ("patient", "study", "series", "instance")


def decide_resource(principal, method, level, orthanc_id, dicom_uid=""):
    """Decide the Orthanc Authorization plugin's question about one resource.

    `level` is the plugin's ("patient", "study", "series", "instance"),
    `orthanc_id` Orthanc's ID of the resource and `dicom_uid` its PatientID
    (patient level) or Study/Series/SOP Instance UID. Each answer is the one
    `decide` gives for that resource's own route, so the Lua filter and the
    plugin never disagree about who sees what."""
    if principal is None:
        return DENY_NO_SESSION
    if principal.kind == "staff":
        # Staff decisions never depend on the resource: `decide` keeps that rule.
        return decide(principal, method, "/")
    if level not in PLUGIN_LEVELS or not isinstance(orthanc_id, str) \
            or not re.fullmatch(_OID, orthanc_id):
        return Decision(False, "not a resource of Orthanc")
    if level == "patient":
        return _decide_patient_level(principal, method, orthanc_id, dicom_uid)
    if method != "GET":
        return Decision(False, "read-only access")
    study = _study_of_plugin_resource(level, orthanc_id, dicom_uid)
    if not may_see_study(principal, study):
        return Decision(False, "not one of this login's studies")
    return Decision(True, "a study this login may see", keys=[orthanc_id], study=study)


def _decide_patient_level(principal, method, orthanc_id, dicom_uid):
    """The patient-level question, answered as `decide` answers /patients/{id}.

    The plugin asks it before every study, series and instance of the patient
    (0.4 and 0.11 want every level granted), and alone for the /patients/{id}
    routes, whose /archive, /media and /studies hold every study of that
    patient. Only whoever may see all of them gets it: staff and the patient
    themself. A rule login or a share that sees some of the patient's studies
    is refused, even when it sees all of those recorded today: a study Orthanc
    holds but the service has not recorded yet (not stable) would leak through
    /patients/{id}/archive. So such logins reach their studies through the
    plugin only where it skips the patient level ("CheckedLevel": "studies"),
    and the reverse proxy in front must then refuse /patients/... to them,
    because some plugin versions let a URI through when none of its levels is
    checked. Refusing here never shows another study of the same patient."""
    if principal.kind == "patient" and dicom_uid and dicom_uid != principal.patient.patient_id:
        return Decision(False, "PatientID does not match this patient")
    return decide(principal, method, f"/patients/{orthanc_id}")


def _study_of_plugin_resource(level, orthanc_id, dicom_uid):
    """The recorded study holding this study, series or instance, provided the
    UID the plugin names with it (if any) is the one recorded for that ID."""
    if level == "study":
        study = _study_of_orthanc_id("studies", orthanc_id)
        uid = study.study_uid if study else ""
    else:
        name, build, params = study_lookup_for_resource(level, orthanc_id)
        row = fastsql.fetch_one(name, build, *params)
        study, uid = ((fastsql.instance(Study, row[:-1], DECISION_FIELDS), row[-1]) if row
                      else (None, ""))
    # A body naming one resource's ID with another's UID is not a question
    # about one resource: refuse rather than guess which one was meant.
    if dicom_uid and dicom_uid != uid:
        return None
    return study
