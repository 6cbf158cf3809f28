"""Identity conflicts: studies that must not go to the login their PatientID names.

A login is made for one DICOM patient, found by the PatientID Orthanc
recorded. Two things can make that PatientID name the wrong person:

- Orthanc could not decode it. With a SpecificCharacterSet it does not know,
  Orthanc falls back to ASCII and drops the bytes it cannot decode:
  another person's ``COLLIDE\\xe9`` is recorded as ``COLLIDE``, and filed
  under the Orthanc patient of ``COLLIDE``. Ingest compares the element's raw
  bytes (``GET /instances/{id}/content/0010-0020``, the first instance of
  each series) with what Orthanc recorded, decoding them with pydicom, which
  knows DICOM's character sets.
- The study is of someone else with the same PatientID: another birth date
  or another name (after folding case, accents, spacing and trailing empty
  components) than the login's patient, when both are given.

Such a study is recorded here, not in Study: no patient, share or rule login
sees it (staff see everything anyway), and staff see the reason. An admin
resolves it: attach it to the login of its PatientID (made now if there is
none yet) or to a separate login already made for the same PatientID, or make
a separate login, whose login ID is the recorded PatientID followed by "-2"
(or the first free "-n"). Orthanc keeps the study under the same Orthanc
patient whatever the service decides, so that Orthanc patient's own routes
(/patients/{id}/archive, /media, /studies) stay refused to everyone but
staff while it holds a study of another login (`orthanc_patient_in_conflict`).
"""

import json
import logging
import threading

from pydicom import config as pydicom_config
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.valuerep import TEXT_VR_DELIMS

from . import audit, fastsql
from .db import write_transaction
from .models import IdentityConflict, Patient, utcnow
from .text import fold_text

log = logging.getLogger(__name__)

OPEN, ATTACHED, SEPARATE = "open", "attached", "separate"
ACTIONS = ("attach", "separate")
# A separate login has no Orthanc patient of its own (its study stays under
# another patient's): this marker, never an Orthanc ID, stands in for one, so
# the patient level is never granted to it by its orthanc_id.
SEPARATE_MARKER = "separate-"
PADDING = " \x00"


class ResolveError(ValueError):
    """The resolution asked for cannot be made; `code` says why."""

    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code = status, code


# -- the interface of the access decision ------------------------------------

BLOCKING = fastsql.Statement(
    "orthanc-patient-in-conflict",
    f'SELECT "id" FROM {fastsql.table(IdentityConflict)} '
    'WHERE "patient_orthanc_id" = {p} AND "blocks_patient_level" LIMIT 1',
    1,
)


def orthanc_patient_in_conflict(patient_orthanc_id):
    """Whether this Orthanc patient (Orthanc's ID, as Patient.orthanc_id)
    holds a study in identity conflict: unresolved, or resolved to a login
    other than this Orthanc patient's own (a separate login). Its
    patient-level routes then hold another person's study: refuse them to
    everyone but staff, the patient included. One indexed lookup."""
    return fastsql.fetch_one(BLOCKING, patient_orthanc_id) is not None


def is_separate_login(patient):
    return patient.orthanc_id.startswith(SEPARATE_MARKER)


# -- detection ---------------------------------------------------------------

_pydicom_lock = threading.Lock()


def _strict_decode(raw, terms):
    """Decode with pydicom, raising instead of replacing what it cannot decode.
    pydicom's strictness is a process-wide setting: set it only meanwhile,
    one decoding at a time (the service uses pydicom nowhere else)."""
    with _pydicom_lock:
        saved = pydicom_config.settings.reading_validation_mode
        pydicom_config.settings.reading_validation_mode = pydicom_config.RAISE
        try:
            return decode_bytes(raw, convert_encodings(terms), TEXT_VR_DELIMS)
        finally:
            pydicom_config.settings.reading_validation_mode = saved


def shown_bytes(raw):
    """Bytes for people: printable ASCII as it is, anything else as \\xNN."""
    return "".join(chr(b) if 32 <= b < 127 and b != 0x5C else f"\\x{b:02x}" for b in raw)


def patient_id_problem(raw, charset, recorded):
    """None when Orthanc recorded the PatientID element's bytes `raw` as they
    decode in the SpecificCharacterSet `charset` (its value, "\\"-separated);
    else (code, details). Only padding (spaces, NULs at either end) may differ."""
    raw = raw or b""
    recorded = (recorded or "").strip(PADDING)
    terms = [t.strip() for t in (charset or "").split("\\")]
    details = {
        "raw": shown_bytes(raw.strip(PADDING.encode())),
        "charset": charset or "",
        "recorded": recorded,
    }
    if all(b < 0x80 for b in raw) and b"\x1b" not in raw:
        decoded = raw.decode("ascii")  # ASCII is ASCII in every term
    else:
        try:
            decoded = _strict_decode(raw, terms)
        except LookupError:  # a term pydicom does not know (nor can correct)
            return "charset_unknown", details
        except (UnicodeError, ValueError):
            return "patient_id_undecodable", details
    decoded = decoded.strip(PADDING)
    if decoded != recorded:
        return "patient_id_differs", dict(details, decoded=decoded)
    return None


def name_key(value):
    """A PersonName as the identity check compares it: each group ("=") of
    components ("^") folded (case, accents, spaces), trailing empty
    components and groups dropped."""
    groups = []
    for group in (value or "").split("="):
        parts = [fold_text(p) for p in group.split("^")]
        while parts and not parts[-1]:
            parts.pop()
        groups.append(tuple(parts))
    while groups and not groups[-1]:
        groups.pop()
    return tuple(groups)


def names_differ(a, b):
    """Both names given, and a group both have differs (a study with only the
    alphabetic group is the same name as one that adds an ideographic one)."""
    ka, kb = name_key(a), name_key(b)
    if not ka or not kb:
        return False
    return any(x and y and x != y for x, y in zip(ka, kb, strict=False))


def identity_problems(data, patient):
    """Everything that keeps this study (ingest.read_study's data) from the
    login `patient` its PatientID names (None: no login yet)."""
    tags = data["patient"]
    found = []
    for entry in data.get("patient_id_raw") or [{"raw": None, "charset": ""}]:
        if entry["raw"] is None:
            # The element is missing from a series' file, yet Orthanc holds a
            # PatientID for the study: not the same patient's file.
            found.append(("patient_id_missing", {"recorded": tags.get("PatientID", "")}))
            continue
        problem = patient_id_problem(
            bytes.fromhex(entry["raw"]), entry["charset"], tags.get("PatientID", "")
        )
        if problem and problem not in found:
            found.append(problem)
    if patient is not None:
        if is_separate_login(patient):
            found.append(("separate_login_id", {"login": patient.patient_id}))
        birth = tags.get("PatientBirthDate", "")
        if birth and patient.birth_date and birth != patient.birth_date:
            found.append(("birth_date", {"study": birth, "login": patient.birth_date}))
        name = tags.get("PatientName", "")
        if names_differ(name, patient.name):
            found.append(("name", {"study": name, "login": patient.name}))
    return [dict(details, code=code) for code, details in found]


def hold(orthanc_id, data, patient_id, problems):
    """Record (or refresh) the study as a conflict. Returns True when new."""
    row = IdentityConflict.get_or_none(IdentityConflict.study_orthanc_id == orthanc_id)
    fields = dict(
        patient_orthanc_id=data["patient_orthanc_id"],
        patient_id=patient_id,
        problems=json.dumps(problems, ensure_ascii=False),
        snapshot=json.dumps(data, ensure_ascii=False),
    )
    if row is None:
        IdentityConflict.create(study_orthanc_id=orthanc_id, **fields)
        # What kind of conflict only: the names and birth dates stay out of the log.
        audit.record(
            "identity_conflict",
            actor="ingest",
            subject=f"study {orthanc_id}",
            detail=f"PatientID {patient_id}: " + ", ".join(p["code"] for p in problems),
        )
        log.warning(
            "study %s held back as an identity conflict (%s); staff resolve it",
            orthanc_id,
            ", ".join(p["code"] for p in problems),
        )
        return True
    IdentityConflict.update(**fields).where(IdentityConflict.id == row.id).execute()
    return False


# -- what staff read ----------------------------------------------------------


def _plain(message, **values):
    return message % values if values else message


def describe(problem, _=_plain):
    """One problem in words; `_` is gettext for the pages (English otherwise)."""
    code, p = problem["code"], problem
    if code == "charset_unknown":
        return _(
            "The PatientID's bytes %(raw)s are not ASCII and the character set "
            "%(charset)s is unknown: Orthanc recorded them as %(recorded)s.",
            raw=p["raw"],
            charset=p["charset"] or "-",
            recorded=repr(p["recorded"]),
        )
    if code == "patient_id_undecodable":
        return _(
            "The PatientID's bytes %(raw)s are not valid in the character set "
            "%(charset)s: Orthanc recorded them as %(recorded)s.",
            raw=p["raw"],
            charset=p["charset"] or "-",
            recorded=repr(p["recorded"]),
        )
    if code == "patient_id_differs":
        return _(
            "The PatientID's bytes %(raw)s in the character set %(charset)s read "
            "%(decoded)s, but Orthanc recorded %(recorded)s.",
            raw=p["raw"],
            charset=p["charset"] or "-",
            decoded=repr(p["decoded"]),
            recorded=repr(p["recorded"]),
        )
    if code == "patient_id_missing":
        return _(
            "A series of the study has no PatientID, but Orthanc recorded %(recorded)s.",
            recorded=repr(p["recorded"]),
        )
    if code == "separate_login_id":
        return _(
            "The PatientID is the login ID %(login)s made for another person's study.",
            login=p["login"],
        )
    if code == "birth_date":
        return _(
            "The birth date %(study)s differs from the login's %(login)s.",
            study=p["study"],
            login=p["login"],
        )
    if code == "name":
        return _(
            "The patient name %(study)s differs from the login's %(login)s.",
            study=p["study"],
            login=p["login"],
        )
    return code


def reason(row, _=_plain):
    return " ".join(describe(p, _) for p in json.loads(row.problems))


def open_conflicts(limit=1000):
    return (
        IdentityConflict.select()
        .where(IdentityConflict.state == OPEN)
        .order_by(IdentityConflict.detected_at.desc(), IdentityConflict.id.desc())
        .limit(limit)
    )


def attach_targets(row):
    """The logins this conflict may be attached to: its PatientID's own (if
    there is one yet), and separate logins made for the same PatientID."""
    targets = []
    own = Patient.get_or_none(Patient.patient_id == row.patient_id)
    if own is not None and not is_separate_login(own):
        targets.append(own)
    made = (
        Patient.select()
        .join(IdentityConflict, on=(IdentityConflict.login == Patient.id))
        .where(
            (IdentityConflict.patient_id == row.patient_id) & (IdentityConflict.state == SEPARATE)
        )
        .distinct()
        .order_by(Patient.id)
    )
    targets.extend(p for p in made if is_separate_login(p))
    return targets


def attach_choices(row):
    """The login IDs staff may attach the study to: those of `attach_targets`,
    or its PatientID's when no login has that ID yet (made on attaching)."""
    choices = [p.patient_id for p in attach_targets(row)]
    if not Patient.select().where(Patient.patient_id == row.patient_id).exists():
        choices.insert(0, row.patient_id)
    return choices


def separate_login_id(base):
    """The first free "<PatientID>-n", n from 2, within DICOM's 64 characters."""
    n = 2
    while True:
        suffix = f"-{n}"
        candidate = base[: 64 - len(suffix)] + suffix
        if not Patient.select().where(Patient.patient_id == candidate).exists():
            return candidate
        n += 1


def conflict_json(row, _=_plain):
    snapshot = json.loads(row.snapshot)
    tags = snapshot.get("tags", {})
    own = Patient.get_or_none(Patient.patient_id == row.patient_id)
    return {
        "orthanc_id": row.study_orthanc_id,
        "code": json.loads(row.problems)[0]["code"] if row.problems != "[]" else "",
        "problems": json.loads(row.problems),
        "reason": reason(row, _),
        "patient_id": row.patient_id,
        "patient_orthanc_id": row.patient_orthanc_id,
        "patient_name": snapshot.get("patient", {}).get("PatientName", ""),
        "birth_date": snapshot.get("patient", {}).get("PatientBirthDate", ""),
        "study_date": tags.get("StudyDate", ""),
        "description": tags.get("StudyDescription", ""),
        "modalities": snapshot.get("modalities", []),
        "login": own.patient_id if own is not None else None,
        "login_name": own.name if own is not None else None,
        "login_birth_date": own.birth_date if own is not None else None,
        "attach_to": attach_choices(row),
        "separate_login_id": separate_login_id(row.patient_id),
        "state": row.state,
        "detected_at": row.detected_at.isoformat() + "Z",
    }


# -- resolving ------------------------------------------------------------------


def resolve(orthanc_id, action, login_id=None, actor="", address=""):
    """Attach the conflicting study to a login, or make a separate login for
    it; record it, audited. Returns (patient, new password or None)."""
    from . import ingest  # ingest uses this module

    if action not in ACTIONS:
        raise ResolveError(400, "bad_action", "'action' must be 'attach' or 'separate'.")
    with write_transaction():
        row = IdentityConflict.get_or_none(
            (IdentityConflict.study_orthanc_id == orthanc_id) & (IdentityConflict.state == OPEN)
        )
        if row is None:
            raise ResolveError(404, "no_such_conflict", "No unresolved conflict for this study.")
        data = json.loads(row.snapshot)
        password = None
        if action == "attach":
            target = login_id or row.patient_id
            allowed = {p.patient_id: p for p in attach_targets(row)}
            if target in allowed:
                patient = allowed[target]
            elif target == row.patient_id and target in attach_choices(row):
                # No login for this PatientID yet: made now, as a first study makes it.
                patient, password = ingest.new_login(
                    row.patient_id, row.patient_orthanc_id, data["patient"]
                )
            else:
                raise ResolveError(
                    400,
                    "bad_login",
                    "A conflict can be attached only to the "
                    "login of its PatientID or to a separate login made for it.",
                )
            state, blocks = ATTACHED, patient.orthanc_id != row.patient_orthanc_id
        else:
            patient, password = ingest.new_login(
                separate_login_id(row.patient_id), f"{SEPARATE_MARKER}{row.id}", data["patient"]
            )
            state, blocks = SEPARATE, True
        IdentityConflict.update(
            state=state,
            login=patient,
            blocks_patient_level=blocks,
            resolved_at=utcnow(),
            resolved_by=str(actor)[:120],
        ).where(IdentityConflict.id == row.id).execute()
        ingest.store_study(orthanc_id, data, patient=patient)
        if password is not None:
            audit.record(
                "password_issued",
                actor=actor,
                subject=f"patient {patient.patient_id}",
                address=address,
                detail="login made resolving an identity conflict",
            )
        audit.record(
            "identity_resolved",
            actor=actor,
            subject=f"study {orthanc_id}",
            address=address,
            detail=(
                f"attached to patient {patient.patient_id}"
                if action == "attach"
                else f"separate login {patient.patient_id} made"
            )
            + f" (PatientID {row.patient_id})",
        )
    log.info("identity conflict of study %s resolved: %s", orthanc_id, state)
    return patient, password
