"""The route grammar: what a request to Orthanc's HTTP API names.

Every decision starts here, once. `parse` reads a request line (method, path
and query string, as Orthanc will receive them, without nginx's /orthanc
prefix) into a `Target`: the resources, UIDs and search parameters it names.
`plugin_target` does the same for the Authorization plugin's questions, which
name one resource by level and ID. The policy (policy.py) then decides on the
Target alone, whichever adapter asked.

Only shapes known to stay inside what they name are recognised; anything
else is OTHER, which only staff get. The grammar is strict on purpose:
  - a path outside [A-Za-z0-9/._,-], or with "//", "/." or a trailing "/", is
    MALFORMED (nginx and Orthanc normalise such paths differently);
  - the tails below a resource are listed (READ_TAILS): a new Orthanc route
    stays closed until it is read and listed here;
  - "/patient" below a study, series or instance climbs to the patient, whose
    record lists every study of that patient: it is a PATIENT target;
  - a query string matters where Orthanc takes resources from it (QIDO
    searches, /tools/create-archive?resources=); there every parameter must
    be known and given once, under any of its spellings.

The Lua filter's cache uses `lua_cache_grammar()` (written into Orthanc's
configuration by the launcher), so its grammar is this one.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from pydicom.datadict import tag_for_keyword

OID_RE = r"[0-9a-f]{8}(?:-[0-9a-f]{8}){4}"
UID_RE = r"[0-9]+(?:\.[0-9]+)*"
OID = re.compile(OID_RE)
UID = re.compile(UID_RE)
MAX_UID = 64

SAFE_PATH = re.compile(r"^/[A-Za-z0-9/._,-]*$")
SEGMENT = re.compile(r"^[A-Za-z0-9._-]+$")
# Percent-escapes are decoded before parameters are read: the raw query may
# hold only these (UIDs, keywords, dates, names with wildcards, encodings).
SAFE_QUERY = re.compile(r"^[A-Za-z0-9._~,=&%+*^:!-]*$")
MAX_PARAMETERS = 32
MAX_ARCHIVE_RESOURCES = 100

LEVELS = ("patients", "studies", "series", "instances")
CLIMB = "patient"  # /studies|series|instances/{id}/patient: the patient record

# What a GET may read below a resource of each level, by first segment.
# Tails in WITH_SUBPATH may go deeper (/metadata/{name}, /frames/0/rendered).
# Not listed, so staff only: labels (1.12+, staff's own workflow marks),
# and every POST-only route (modify, anonymize, reconstruct ...).
# The tables here stay as laid out (`fmt: off`), not one entry a line.
# fmt: off
READ_TAILS = {
    "patients": {"", "studies", "series", "instances", "shared-tags", "statistics", "metadata",
                 "attachments", "archive", "media", "module", "protected", "instances-tags"},
    "studies": {"", "series", "instances", "shared-tags", "statistics", "metadata",
                "attachments", "archive", "media", "module", "module-patient",
                "instances-tags"},
    "series": {"", "instances", "study", "shared-tags", "statistics", "ordered-slices",
               "archive", "media", "module", "metadata", "attachments", "numpy",
               "instances-tags"},
    "instances": {"", "file", "preview", "simplified-tags", "tags", "header", "content",
                  "frames", "image-int16", "image-uint8", "image-uint16", "rendered", "matlab",
                  "numpy", "pdf", "statistics", "study", "series", "metadata", "attachments",
                  "module"},
}
WITH_SUBPATH = {"metadata", "attachments", "content", "frames"}
# fmt: on

WEB_VIEWER_SERIES = re.compile(rf"^/web-viewer/(?:series|is-stable-series)/({OID_RE})$")
WEB_VIEWER_INSTANCE = re.compile(rf"^/web-viewer/instances/[A-Za-z0-9]+-({OID_RE})_[0-9]+$")
# Viewers' own HTML, scripts and styles: no patient data in them.
VIEWER_ASSET = re.compile(r"^/(?:web-viewer/(?:app|libs)|stone-webviewer)(?:/[A-Za-z0-9._-]+)+$")

DICOMWEB_SCOPED = re.compile(
    rf"^/dicom-web/studies/({UID_RE})(?:/series/({UID_RE})(?:/instances/({UID_RE}))?)?"
    r"(?:/(?:metadata|rendered|thumbnail|series|instances|frames/[0-9,]+(?:/rendered)?"
    r"|bulk(?:/[A-Za-z0-9._-]+)*))?$"
)
DICOMWEB_SEARCH = re.compile(r"^/dicom-web/(studies|series|instances)$")
# Orthanc's searches by body (Orthanc Explorer's search, lookups by UID or
# PatientID): POSTs that change nothing, for staff only.
SEARCH_TOOLS = ("/tools/find", "/tools/lookup")
ARCHIVE_TOOLS = re.compile(r"^/tools/(?:create-archive|create-media|create-media-extended)$")

# DICOMweb parameters that are not attributes (QIDO's and WADO-RS rendered's).
# includefield alone may come several times: it only adds attributes to answers.
# fmt: off
REPEATABLE: set[int | str] = {"includefield"}
DICOMWEB_CONTROLS = {"includefield", "limit", "offset", "fuzzymatching", "viewport", "window",
                     "quality", "annotation", "charset"}
ARCHIVE_PARAMETERS = {"resources", "filename", "transcode", "lossy-quality"}
# fmt: on
STUDY_INSTANCE_UID = 0x0020000D
PATIENT_ID = 0x00100020
# A value that matches more than itself: wildcards, lists, ranges.
NOT_EXACT = re.compile(r"[*?\\,]")


# fmt: off
class Kind(enum.Enum):
    RESOURCE = "resource"    # inside one study: a study, series or instance by Orthanc ID
    PATIENT = "patient"      # a patient's record: /patients/{id}..., or a climb to it
    DICOMWEB = "dicomweb"    # inside one study named by its UIDs (WADO-RS, QIDO below it)
    SEARCH = "search"        # QIDO at the root, narrowed to studies by UID or PatientID
    ARCHIVE = "archive"      # the tools that zip the resources their query names
    ASSET = "asset"          # a viewer's static files
    SEARCH_TOOL = "search-tool"  # POST /tools/find or /tools/lookup: searches, no change
    OTHER = "other"          # lists, searches, system routes: staff only
    MALFORMED = "malformed"  # not a request any principal but an admin should make


@dataclass(frozen=True)
class Target:
    method: str                  # upper-case HTTP (HEAD and OPTIONS read as GET)
    kind: Kind
    level: str = ""              # "patients" | "studies" | "series" | "instances"
    orthanc_id: str = ""         # the resource named (RESOURCE, PATIENT)
    uids: tuple[str, ...] = ()   # (study, series, instance) UIDs, "" where not named
    expected_uid: str = ""       # the plugin's dicom-uid, which must be the resource's
    study_uids: tuple[str, ...] = ()  # SEARCH: the studies it is narrowed to
    patient_id: str = ""         # SEARCH: the PatientID it is narrowed to
    resources: tuple[str, ...] = ()  # ARCHIVE: Orthanc IDs of any level
    why: str = ""                # OTHER, MALFORMED: for the log and the tests
# fmt: on


def _method(method: str | None) -> str:
    method = (method or "").upper()
    return "GET" if method in ("HEAD", "OPTIONS") else method


def parse(method: str | None, uri: str) -> Target:
    """The Target of a request line; `uri` is the path with its query string
    (if the adapter sees one: Lua does not, unless nginx passed it)."""
    method = _method(method)
    path, _, query = uri.partition("?")
    if (
        not SAFE_PATH.fullmatch(path)
        or "//" in path
        or "/." in path
        or (path.endswith("/") and path != "/")
    ):
        return Target(method, Kind.MALFORMED, why="unexpected characters in the path")
    if not SAFE_QUERY.fullmatch(query):
        return Target(method, Kind.MALFORMED, why="unexpected characters in the query")
    segments = path.split("/")[1:]
    if len(segments) >= 2 and segments[0] in LEVELS and OID.fullmatch(segments[1]):
        return _resource(method, segments[0], segments[1], segments[2:])
    if m := WEB_VIEWER_SERIES.fullmatch(path):
        return Target(method, Kind.RESOURCE, level="series", orthanc_id=m.group(1))
    if m := WEB_VIEWER_INSTANCE.fullmatch(path):
        return Target(method, Kind.RESOURCE, level="instances", orthanc_id=m.group(1))
    if VIEWER_ASSET.fullmatch(path):
        return Target(method, Kind.ASSET)
    if m := DICOMWEB_SCOPED.fullmatch(path):
        return _dicomweb_scoped(method, tuple(u or "" for u in m.groups()), query)
    if m := DICOMWEB_SEARCH.fullmatch(path):
        return _dicomweb_search(method, query)
    if ARCHIVE_TOOLS.fullmatch(path) and method == "GET":
        return _archive(method, query)
    if path in SEARCH_TOOLS and method == "POST":
        return Target(method, Kind.SEARCH_TOOL)
    return Target(method, Kind.OTHER, why="not a route of one principal's studies")


def _resource(method: str, level: str, orthanc_id: str, tail: list[str]) -> Target:
    first = tail[0] if tail else ""
    if first == CLIMB and level != "patients" and len(tail) == 1:
        return Target(method, Kind.PATIENT, level=level, orthanc_id=orthanc_id)
    if (
        first not in READ_TAILS[level]
        or (len(tail) > 1 and first not in WITH_SUBPATH)
        or not all(SEGMENT.fullmatch(s) for s in tail)
    ):
        return Target(method, Kind.OTHER, why=f"not a read of one {level[:-1]}")
    kind = Kind.PATIENT if level == "patients" else Kind.RESOURCE
    return Target(method, kind, level=level, orthanc_id=orthanc_id)


def _parameters(query: str) -> list[tuple[str, str]] | None:
    """[(name, value)] decoded, or None when the query is not well formed."""
    if not query:
        return []
    pairs = parse_qsl(query, keep_blank_values=True)
    if len(pairs) > MAX_PARAMETERS or any("\x00" in n or "\x00" in v for n, v in pairs):
        return None
    return pairs


def _attribute(name: str) -> int | str | None:
    """The DICOM tag a QIDO parameter names (keyword or 8 hex digits), a
    control parameter's lower-cased name, or None when it is neither."""
    if re.fullmatch(r"[0-9A-Fa-f]{8}", name):
        return int(name, 16)
    tag = tag_for_keyword(name)
    if tag is not None:
        return tag
    return name.lower() if name.lower() in DICOMWEB_CONTROLS else None


def _dicomweb_parameters(query: str) -> dict[int | str, str] | None:
    """{tag or control: value}, or None when a parameter is unknown, given
    twice under any spelling (the plugin and DICOMweb may each read another
    one), or the query is malformed."""
    pairs = _parameters(query)
    if pairs is None:
        return None
    found: dict[int | str, str] = {}
    for name, value in pairs:
        key = _attribute(name)
        if key is None or (key in found and key not in REPEATABLE):
            return None
        found[key] = value
    return found


def _dicomweb_scoped(method: str, uids: tuple[str, ...], query: str) -> Target:
    parameters = _dicomweb_parameters(query)
    if parameters is None:
        return Target(method, Kind.MALFORMED, why="unknown or repeated DICOMweb parameters")
    # Inside a study the path names it; a second StudyInstanceUID in the
    # query could name another one.
    if STUDY_INSTANCE_UID in parameters:
        return Target(method, Kind.MALFORMED, why="a StudyInstanceUID in the query")
    return Target(method, Kind.DICOMWEB, uids=uids)


def _dicomweb_search(method: str, query: str) -> Target:
    """QIDO at the root: granted only when narrowed to studies by their UIDs,
    or (a patient) to their own PatientID. Every other attribute only narrows."""
    parameters = _dicomweb_parameters(query)
    if parameters is None:
        return Target(method, Kind.MALFORMED, why="unknown or repeated DICOMweb parameters")
    study_uids: tuple[str, ...] = ()
    patient_id = ""
    if STUDY_INSTANCE_UID in parameters:
        study_uids = tuple(re.split(r"[,\\]", parameters[STUDY_INSTANCE_UID]))
        if not all(UID.fullmatch(u) and len(u) <= MAX_UID for u in study_uids):
            return Target(method, Kind.MALFORMED, why="StudyInstanceUID is not a list of UIDs")
    if PATIENT_ID in parameters:
        patient_id = parameters[PATIENT_ID]
        if not patient_id or NOT_EXACT.search(patient_id) or len(patient_id) > 64:
            return Target(method, Kind.MALFORMED, why="PatientID is not one exact value")
    if not study_uids and not patient_id:
        return Target(method, Kind.OTHER, why="a search not narrowed to studies")
    return Target(method, Kind.SEARCH, study_uids=study_uids, patient_id=patient_id)


def _archive(method: str, query: str) -> Target:
    pairs = _parameters(query)
    if (
        pairs is None
        or any(n not in ARCHIVE_PARAMETERS for n, _ in pairs)
        or len({n for n, _ in pairs}) != len(pairs)
    ):
        return Target(method, Kind.MALFORMED, why="unknown or repeated archive parameters")
    resources = tuple(dict(pairs).get("resources", "").split(","))
    if not 0 < len(resources) <= MAX_ARCHIVE_RESOURCES or not all(
        OID.fullmatch(r) for r in resources
    ):
        return Target(method, Kind.MALFORMED, why="resources is not a list of Orthanc IDs")
    return Target(method, Kind.ARCHIVE, resources=resources)


# -- the Authorization plugin's questions ----------------------------------------

PLUGIN_LEVELS = {
    "patient": "patients",
    "study": "studies",
    "series": "series",
    "instance": "instances",
}


def plugin_target(
    method: str | None, level: str, orthanc_id: object, dicom_uid: str | None = ""
) -> Target:
    """The Target of the plugin's question about one resource: the same as
    its own route's (`/{level}/{id}`), with the UID the plugin names beside
    it, which must be that resource's."""
    method = _method(method)
    if (
        level not in PLUGIN_LEVELS
        or not isinstance(orthanc_id, str)
        or not OID.fullmatch(orthanc_id)
    ):
        return Target(method, Kind.MALFORMED, why="not a resource of Orthanc")
    kind = Kind.PATIENT if level == "patient" else Kind.RESOURCE
    return Target(
        method,
        kind,
        level=PLUGIN_LEVELS[level],
        orthanc_id=orthanc_id,
        expected_uid=dicom_uid or "",
    )


def hot_reads_regex() -> str:
    """The nginx location (PCRE, with nginx's /orthanc prefix) of the reads
    of one resource by Orthanc ID: RESOURCE and ASSET targets, by the same
    tables as `parse`. They are a viewer's hundreds of requests per study,
    and the second lock behind nginx (the Lua filter, the plugin) decides
    them exactly as nginx's check would, from its cache; nginx therefore
    lets them through unchecked when they are GET or HEAD without a query
    string, and checks everything else (deploy/trial.py and
    deploy/docker/locations.inc, which tests/test_routes.py keeps equal)."""
    segment = "[A-Za-z0-9._-]+"
    levels = []
    for level in ("studies", "series", "instances"):
        plain = sorted(t for t in READ_TAILS[level] if t and t not in WITH_SUBPATH)
        deep = sorted(t for t in READ_TAILS[level] if t in WITH_SUBPATH)
        tails = f"/(?:{'|'.join(plain)})"
        if deep:
            tails = f"(?:{tails}|/(?:{'|'.join(deep)})(?:/{segment})*)"
        levels.append(f"{level}/{OID_RE}{tails}?")
    viewer = (
        rf"web-viewer/(?:series|is-stable-series)/{OID_RE}"
        rf"|web-viewer/instances/[A-Za-z0-9]+-{OID_RE}_[0-9]+"
        rf"|(?:web-viewer/(?:app|libs)|stone-webviewer)(?:/{segment})+"
    )
    return f"^/orthanc/(?:{'|'.join(levels)}|{viewer})$"


def lua_cache_grammar() -> dict[str, object]:
    """What the Lua filter's cache may answer, for Orthanc's configuration
    (PatientAccess section): "CacheableTails", {level: [tails]} under which a
    grant of a study covers each of that study's resources (every read below
    a study, series or instance; never the climb to the patient), and
    "CacheableSubpaths", the tails that may go deeper."""
    return {
        "CacheableTails": {
            level: sorted(READ_TAILS[level]) for level in ("studies", "series", "instances")
        },
        "CacheableSubpaths": sorted(WITH_SUBPATH),
    }
