"""The one access decision: may this principal make this request to Orthanc?

`decide(principal, target)` takes a parsed request (routes.Target) and says
yes or no, with what the grant covers. It reads only the service's database,
never Orthanc: the Lua filter holds Orthanc's Lua lock while it waits, and
Orthanc's REST API needs that lock for every request.

The rules, for patients, rule logins and shares (staff: below):
  - reads only (GET; HEAD and OPTIONS count as GET);
  - a study, series or instance: when its recorded study is one they see;
  - the patient level (/patients/{id}..., /studies/{id}/patient...): the
    patient themself only, since it lists every study of that patient, and
    not while Orthanc holds a study of that patient in conflict with the
    login (see authsvc/conflicts.py);
  - DICOMweb by UIDs: when every recorded study with that StudyInstanceUID
    is one they see (modalities reuse UIDs, and DICOMweb then answers for
    all of them), and the series or instance named is that study's;
  - QIDO at the root: narrowed to such studies by UID, or for a patient to
    their own PatientID;
  - /tools/create-archive?resources=: every resource named is theirs;
  - everything else: refused.
Admins may do everything; radiologists may read everything, and search
(POST /tools/find, /tools/lookup: they change nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, cast

from .. import conflicts, fastsql
from ..models import Patient, Resource, RuleMatch, Study
from . import principals
from .principals import PatientPrincipal, RulePrincipal
from .routes import Kind, Target
from .visibility import may_see_study

if TYPE_CHECKING:
    from .principals import Principal

STATIC_KEY = "asset:web-viewer"


@dataclass
class Decision:
    granted: bool
    reason: str
    # What the grant covers, so that the Lua filter may reuse it: "all" (any
    # request), "get" (any GET) or "keys" (GETs naming only these Orthanc IDs
    # by routes.cacheable_tails()). Never a UID: two studies may share one.
    scope: str = "keys"
    keys: list[str] = field(default_factory=list)
    studies: list[StudyRef] = field(default_factory=list)  # the studies granted, for the audit log
    # Orthanc patients granted at the patient level: every study Orthanc holds
    # under them must be among `studies` (nginx's check asks Orthanc).
    patients: list[str] = field(default_factory=list)


def refused(reason: str) -> Decision:
    return Decision(False, reason)


# What a decision reads of a study (who may see it, its keys, the audit
# entry). Not a Study model: building one computes every other column's
# default (timestamps, JSON), which with the model's constructor was a fifth
# of a decision's CPU (bench B2); reading every column was a tenth.
class StudyRef(NamedTuple):
    id: int
    orthanc_id: str
    study_uid: str
    patient_id: int
    # updated_at as the database returns it, unconverted: it only tells a
    # study whose resources ingest rewrote from the one cached (study_keys).
    version: object


_COLUMNS, _WIDTH = fastsql.columns(
    Study, (Study.id, Study.orthanc_id, Study.study_uid, Study.patient, Study.updated_at), "s"
)
_STUDIES = f"SELECT {_COLUMNS} FROM {fastsql.table(Study, 's')}"
_STUDIES_OF_RESOURCE = (
    f'SELECT {_COLUMNS}, "r"."uid" FROM {fastsql.table(Study, "s")} '
    f'JOIN {fastsql.table(Resource, "r")} ON "r"."study_id" = "s"."id" '
)

STUDY = fastsql.Statement("study", _STUDIES + ' WHERE "s"."orthanc_id" = {p}', _WIDTH)
STUDY_OF_RESOURCE = fastsql.Statement(
    "study-of-resource",
    _STUDIES_OF_RESOURCE + 'WHERE "r"."orthanc_id" = {p} AND "r"."level" = {p}',
    _WIDTH + 1,
)
# /tools/create-archive names resources of any level: an Orthanc ID is unique.
STUDY_OF_ANY_RESOURCE = fastsql.Statement(
    "study-of-any-resource", _STUDIES_OF_RESOURCE + 'WHERE "r"."orthanc_id" = {p}', _WIDTH + 1
)
STUDIES_OF_PATIENT = fastsql.Statement(
    "studies-of-patient", _STUDIES + ' WHERE "s"."patient_id" = {p} ORDER BY "s"."id"', _WIDTH
)
STUDIES_WITH_UID = fastsql.Statement(
    "studies-with-uid", _STUDIES + ' WHERE "s"."study_uid" = {p} ORDER BY "s"."id"', _WIDTH
)
RESOURCE_IN_STUDY = fastsql.Statement(
    "resource-in-study",
    f'SELECT "id" FROM {fastsql.table(Resource)} '
    'WHERE "study_id" = {p} AND "uid" = {p} AND "level" = {p} LIMIT 1',
    1,
)
KEYS_OF_STUDY = fastsql.Statement(
    "keys-of-study",
    f'SELECT "orthanc_id" FROM {fastsql.table(Resource)} WHERE "study_id" = {{p}}',
    1,
)
PATIENT_EXISTS = fastsql.Statement(
    "patient-exists", f'SELECT "id" FROM {fastsql.table(Patient)} WHERE "orthanc_id" = {{p}}', 1
)


# The same lookups for a rule login, with its match of the study found in
# the same statement (RULE_MATCH's answer, as its last column): one round
# trip instead of two on PostgreSQL. The login's ID is the first parameter.
_RULE_MATCH_COLUMN = (
    f', (SELECT "m"."id" FROM {fastsql.table(RuleMatch, "m")} '
    'WHERE "m"."login_id" = {p} AND "m"."study_id" = "s"."id")'
)


def _with_rule_match(statement: fastsql.Statement) -> fastsql.Statement:
    select, rest = statement.sql.split(" FROM ", 1)
    return fastsql.Statement(
        statement.name + "+rule-match",
        select + _RULE_MATCH_COLUMN + " FROM " + rest,
        statement.width + 1,
    )


_FOR_RULE_LOGIN = {s.name: _with_rule_match(s) for s in (STUDY, STUDY_OF_RESOURCE)}


def study_ref(row: fastsql.Row | None) -> StudyRef | None:
    """A StudyRef from the first columns of a row, None when there is none."""
    return None if row is None or row[0] is None else StudyRef(*row[:_WIDTH])


_RESOURCE_LEVEL = {"series": "series", "instances": "instance"}


def lookup_for(target: Target, principal: Principal | None = None) -> fastsql.Lookup | None:
    """The one statement `decide` runs for this target, if one: the study of
    the resource it names (the pipeline runs it together with the session's),
    and for a rule login already known, its match with that study too."""
    if target.kind not in (Kind.RESOURCE, Kind.PATIENT) or target.level == "patients":
        return None
    if target.level == "studies":
        params: tuple[str, ...]
        statement, params = STUDY, (target.orthanc_id,)
    else:
        statement, params = STUDY_OF_RESOURCE, (target.orthanc_id, _RESOURCE_LEVEL[target.level])
    if isinstance(principal, RulePrincipal):
        return _FOR_RULE_LOGIN[statement.name], (principal.rule_login.id,) + params
    return statement, params


def _study_of(target: Target, principal: Principal | None = None) -> tuple[StudyRef | None, str]:
    """(study, UID of the resource named) for a study, series or instance."""
    lookup = lookup_for(target, principal)
    assert lookup is not None  # a study, series or instance has one
    statement, params = lookup
    row = fastsql.fetch_one(statement, *params)
    if row is None:
        return None, ""
    study = study_ref(row)
    assert study is not None  # a row found holds its study's key
    if statement.name.endswith("+rule-match"):
        assert principal is not None  # only a rule login's lookup has this name
        # may_see_study's question, answered by this row's last column.
        match = row[statement.width - 1]
        fastsql.remember(
            principals.RULE_MATCH,
            (principal.rule_login.id, study.id),
            None if match is None else (match,),
        )
    return study, (study.study_uid if target.level == "studies" else row[_WIDTH])


# study id -> (version, keys): a CT has hundreds. Ingest bumps updated_at
# when it rewrites a study's resources, which retires the cached entry.
_keys_cache: dict[int, tuple[object, list[str]]] = {}
_KEYS_CACHE_SIZE = 2000


def study_keys(study: StudyRef) -> list[str]:
    """The Orthanc IDs of the study and of every series and instance in it.
    Orthanc IDs are hashes of the patient's and the resource's identifiers,
    so each names one resource of one study; UIDs are not keys (shared)."""
    cached = _keys_cache.get(study.id)
    if cached is not None and cached[0] == study.version:
        return cached[1]
    keys = [study.orthanc_id]
    keys.extend(oid for (oid,) in fastsql.fetch_all(KEYS_OF_STUDY, study.id))
    if len(_keys_cache) >= _KEYS_CACHE_SIZE:
        _keys_cache.clear()
    _keys_cache[study.id] = (study.version, keys)
    return keys


def decide(principal: Principal | None, target: Target) -> Decision:
    """Decide one request (a routes.Target) for a principal (None: no session)."""
    if principal is None:
        return refused("no session")
    if principal.sees_everything:
        if principal.is_admin:
            return Decision(True, "admin", scope="all")
        if target.method == "GET":
            return Decision(True, "staff may read everything", scope="get")
        if target.kind is Kind.SEARCH_TOOL:
            return Decision(True, "staff may search")
        return refused("only admins may change Orthanc")
    if target.method != "GET":
        return refused("read-only access")
    decide_kind = _BY_KIND.get(target.kind)
    if decide_kind is None:
        return refused(target.why or "route not open to this login")
    return decide_kind(principal, target)


def _resource(principal: Principal, target: Target) -> Decision:
    study, uid = _study_of(target, principal)
    # A body naming one resource's ID with another's UID is not a question
    # about one resource: refuse rather than guess which one was meant.
    if target.expected_uid and target.expected_uid != uid:
        return refused("the UID is not this resource's")
    if study is None or not may_see_study(principal, study):
        return refused("not one of this login's studies")
    return Decision(True, "a study this login may see", keys=study_keys(study), studies=[study])


def _patient_level_ok(principal: Principal, patient_orthanc_id: str) -> bool:
    return (
        isinstance(principal, PatientPrincipal)
        and principal.patient.orthanc_id == patient_orthanc_id
        and not conflicts.orthanc_patient_in_conflict(patient_orthanc_id)
    )


def _patient(principal: Principal, target: Target) -> Decision:
    """The patient's record lists every study of the patient: only the
    patient themself, never a rule login or a share that sees some of them
    (a study not recorded yet would leak through /patients/{id}/archive)."""
    if not isinstance(principal, PatientPrincipal):
        return refused("the patient level is the patient's only")
    if target.level == "patients":
        if target.expected_uid and target.expected_uid != principal.patient.patient_id:
            return refused("PatientID does not match this patient")
        orthanc_id = target.orthanc_id
    else:
        study, _ = _study_of(target)
        if not may_see_study(principal, study):
            return refused("not one of this login's studies")
        orthanc_id = principal.patient.orthanc_id
    if not _patient_level_ok(principal, orthanc_id):
        return refused("not this patient, or a study of this patient is in conflict")
    return Decision(
        True, "own patient record", studies=_own_studies(principal), patients=[orthanc_id]
    )


def _own_studies(principal: Principal) -> list[StudyRef]:
    # Rows of a SELECT by key: each holds a study (study_ref is never None).
    rows = fastsql.fetch_all(STUDIES_OF_PATIENT, principal.patient.id)
    return cast("list[StudyRef]", [study_ref(row) for row in rows])


def _studies_with_uid(uid: str) -> list[StudyRef]:
    rows = fastsql.fetch_all(STUDIES_WITH_UID, uid)
    return cast("list[StudyRef]", [study_ref(row) for row in rows])


def _all_visible(principal: Principal, studies: list[StudyRef]) -> bool:
    return bool(studies) and all(may_see_study(principal, s) for s in studies)


def _dicomweb(principal: Principal, target: Target) -> Decision:
    """A DICOMweb path names a study by its UID: a StudyInstanceUID shared
    by several studies (a modality's mistake, or a forged file) is granted
    only to whom may see all of them, since the DICOMweb plugin answers for
    every study holding it; the series and instance named must be in one."""
    study_uid, series_uid, sop_uid = target.uids
    studies = _studies_with_uid(study_uid)
    if not _all_visible(principal, studies):
        return refused("not every study with this UID is this login's")
    for study in studies:
        if all(
            not uid or fastsql.fetch_one(RESOURCE_IN_STUDY, study.id, uid, level) is not None
            for uid, level in ((series_uid, "series"), (sop_uid, "instance"))
        ):
            return Decision(True, "a study this login may see", studies=studies)
    return refused("the series or instance is not in this study")


def _search(principal: Principal, target: Target) -> Decision:
    granted: list[StudyRef] = []
    for uid in target.study_uids:
        studies = _studies_with_uid(uid)
        if not _all_visible(principal, studies):
            return refused("a study searched for is not this login's")
        granted.extend(studies)
    patients: list[str] = []
    if target.patient_id and isinstance(principal, PatientPrincipal):
        if target.patient_id != principal.patient.patient_id or not _patient_level_ok(
            principal, principal.patient.orthanc_id
        ):
            return refused("not this patient's PatientID")
        granted.extend(_own_studies(principal))
        patients.append(principal.patient.orthanc_id)
    elif not target.study_uids:
        return refused("only a patient may search by their PatientID")
    return Decision(True, "a search of this login's studies", studies=granted, patients=patients)


def _archive(principal: Principal, target: Target) -> Decision:
    granted: list[StudyRef] = []
    patients: list[str] = []
    for orthanc_id in target.resources:
        study = study_ref(fastsql.fetch_one(STUDY, orthanc_id)) or study_ref(
            fastsql.fetch_one(STUDY_OF_ANY_RESOURCE, orthanc_id)
        )
        if study is not None:
            if not may_see_study(principal, study):
                return refused("a resource to archive is not this login's")
            granted.append(study)
        elif fastsql.fetch_one(PATIENT_EXISTS, orthanc_id) is not None and _patient_level_ok(
            principal, orthanc_id
        ):
            granted.extend(_own_studies(principal))
            patients.append(orthanc_id)
        else:
            return refused("a resource to archive is not this login's")
    return Decision(True, "an archive of this login's studies", studies=granted, patients=patients)


def _asset(principal: Principal, target: Target) -> Decision:
    return Decision(True, "viewer asset", keys=[STATIC_KEY])


_BY_KIND: dict[Kind, Callable[[Principal, Target], Decision]] = {
    Kind.RESOURCE: _resource,
    Kind.PATIENT: _patient,
    Kind.DICOMWEB: _dicomweb,
    Kind.SEARCH: _search,
    Kind.ARCHIVE: _archive,
    Kind.ASSET: _asset,
}
