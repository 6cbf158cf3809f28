"""The audit log as people read it (the staff page and its CSV): local time,
the patient's ID and name, the physician login or the share's patient, the
study's date and description, details in the page's language.

The entries themselves stay as they were written (terse English for logs
and scripts, and covered by the keyed chain): they are only read here, with
the rows they name looked up in a few queries per page. GET /api/audit and
GET /staff/api/audit give one answer (audit_response): each entry as written
and as people read it.
"""

import csv
import datetime
import io
import re

from flask import jsonify, request
from flask_babel import gettext

from . import audit, auditchain
from .errors import ApiError
from .i18n import local_datetime, person_name, study_date
from .models import AuditEvent, Patient, Share, Study
from .text import fold
from .web import int_arg

_ORTHANC_ID = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{8}){4}")


def _study_oid(subject):
    oid = subject[6:] if subject.startswith("study ") else subject
    return oid if _ORTHANC_ID.fullmatch(oid) else None


def _id_after(text, prefix):
    if text.startswith(prefix) and text[len(prefix) :].isdigit():
        return int(text[len(prefix) :])
    return None


class Lookups:
    """The patients, studies and shares a page of entries names, fetched at once."""

    def __init__(self, rows):
        self.studies, self.patients, self.by_pid, self.shares = {}, {}, {}, {}
        oids, pids, patient_ids, share_ids = set(), set(), set(), set()
        for row in rows:
            for text in (row.actor, row.subject):
                if _id_after(text, "patient #") is not None:
                    patient_ids.add(_id_after(text, "patient #"))
                if _id_after(text, "share #") is not None:
                    share_ids.add(_id_after(text, "share #"))
            if _study_oid(row.subject):
                oids.add(_study_oid(row.subject))
            if row.subject.startswith("patient ") and not row.subject.startswith("patient #"):
                pids.add(row.subject[8:])
            if row.detail.startswith("study ") and _study_oid(row.detail):
                oids.add(_study_oid(row.detail))
        if share_ids:
            for share in Share.select().where(Share.id.in_(list(share_ids))):
                self.shares[share.id] = share
                patient_ids.add(share.patient_id)
        study_ids = [s.study_id for s in self.shares.values() if s.study_id]
        query = None
        if oids:
            query = Study.orthanc_id.in_(list(oids))
        if study_ids:
            query = (
                (query | Study.id.in_(study_ids)) if query is not None else Study.id.in_(study_ids)
            )
        self.study_by_pk = {}
        if query is not None:
            for study in Study.select().where(query):
                self.studies[study.orthanc_id] = study
                self.study_by_pk[study.id] = study
                patient_ids.add(study.patient_id)
        if patient_ids or pids:
            where = Patient.id.in_(list(patient_ids)) if patient_ids else None
            if pids:
                by = Patient.patient_id.in_(list(pids))
                where = (where | by) if where is not None else by
            for patient in Patient.select().where(where):
                self.patients[patient.id] = patient
                self.by_pid[patient.patient_id] = patient


def _patient_text(patient):
    if patient is None:
        return ""
    name = person_name(patient.name)
    return f"{patient.patient_id} ({name})" if name else patient.patient_id


def _study_text(study):
    if study is None:
        return ""
    parts = [study_date(study.study_date), study.description, study.modalities.replace("\\", ", ")]
    return " · ".join(p for p in parts if p)


_FIXED_DETAILS = {
    "reissued by staff": lambda: gettext("Reissued by staff"),
    "ended by an admin": lambda: gettext("Ended by an admin"),
    "login created with the first study": lambda: gettext(
        "Login made with the patient's first study"
    ),
    "slip printed; display copy wiped": lambda: gettext(
        "Slip printed; the kept copy of the password was wiped"
    ),
    "reissued from the dashboard": lambda: gettext("Reissued from the dashboard"),
    "login made resolving an identity conflict": lambda: gettext(
        "Login made resolving an identity conflict"
    ),
    "all studies": lambda: gettext("Shares all the patient's studies, future ones included"),
}


def _who(actor, look):
    """The actor in the page's language, and the patient it is (if any)."""
    pk = _id_after(actor, "patient #")
    if pk is not None:
        patient = look.patients.get(pk)
        return gettext("Patient %(who)s", who=_patient_text(patient) or actor), patient
    pk = _id_after(actor, "share #")
    if pk is not None:
        share = look.shares.get(pk)
        patient = look.patients.get(share.patient_id) if share else None
        return gettext(
            "Link shared by the patient %(who)s", who=_patient_text(patient) or actor
        ), patient
    if actor.startswith("rule login "):
        return gettext("Physician or institution %(login)s", login=actor[11:]), None
    if actor.startswith("rule "):  # a failed login: the name typed
        return gettext("Physician or institution %(login)s", login=actor[5:]), None
    if actor.startswith("staff "):
        return gettext("Staff %(user)s", user=actor[6:]), None
    if actor.startswith("patient "):  # a failed login: the ID as matched or typed
        patient = look.by_pid.get(actor[8:])
        return gettext("Patient ID typed: %(id)s", id=actor[8:]), patient
    if actor == "share link":
        return gettext("A shared link"), None
    if actor == "ingest":
        return gettext("The service (new study)"), None
    return actor, None


def _detail(row, look):
    detail = row.detail
    if detail in _FIXED_DETAILS:
        return _FIXED_DETAILS[detail]()
    if row.event == "study_access" and detail.startswith("patient "):
        return ""  # the patient has its own column
    if row.event == "share_created" and _study_oid(detail):
        return gettext(
            "Shares one study: %(study)s",
            study=_study_text(look.studies.get(_study_oid(detail))) or detail[6:],
        )
    match = re.fullmatch(r"(\d+) studies match", detail)
    if match:
        return gettext("Studies it sees now: %(num)s", num=match.group(1))
    match = re.fullmatch(
        r"(attached to patient|separate login) (.+?)(?: made)? \(PatientID (.+)\)", detail
    )
    if match:
        if match.group(1) == "separate login":
            return gettext(
                "Separate login %(login)s made (PatientID %(pid)s)",
                login=match.group(2),
                pid=match.group(3),
            )
        return gettext(
            "Attached to the login %(login)s (PatientID %(pid)s)",
            login=match.group(2),
            pid=match.group(3),
        )
    match = re.fullmatch(r"PatientID (.*): ([a-z_, ]+)", detail)
    if match:
        return gettext(
            "PatientID %(pid)s held back: %(reasons)s",
            pid=match.group(1),
            reasons=", ".join(_conflict_code(c.strip()) for c in match.group(2).split(",")),
        )
    if row.event == "audit_keyed" and detail.isdigit():
        return gettext(
            "Entries up to %(id)s were written before the audit key (plain SHA-256).", id=detail
        )
    if row.event == "rules_rejected":
        return gettext("The rules file has an error (see the rules page); every rule login is off.")
    match = re.fullmatch(r"instance (\S+), (\d+) bytes, patient (.+)", detail)
    if row.event == "report_attached" and match:  # authsvc/attach.py
        return gettext(
            "Report PDF %(id)s of %(kb)s kB, patient %(pid)s",
            id=match.group(1),
            kb=-(-int(match.group(2)) // 1000),
            pid=match.group(3),
        )
    return detail


def _conflict_code(code):
    names = {
        "charset_unknown": gettext("unknown character set"),
        "patient_id_undecodable": gettext("PatientID not readable"),
        "patient_id_differs": gettext("PatientID read differently"),
        "patient_id_missing": gettext("PatientID missing in a series"),
        "birth_date": gettext("another birth date"),
        "name": gettext("another patient name"),
        "separate_login_id": gettext("the ID of a separate login"),
    }
    return names.get(code, code)


def rows_for_people(rows, event_names):
    """Each entry as the page and its CSV show it."""
    shown = []
    # A few hundred entries' lookups at a time: a long export's would
    # otherwise pass more values in one IN (...) than a database takes.
    for start in range(0, len(rows), 500):
        shown += _rows_for_people(rows[start : start + 500], event_names)
    return shown


def _rows_for_people(rows, event_names):
    look = Lookups(rows)
    shown = []
    for row in rows:
        who, actor_patient = _who(row.actor, look)
        study = look.studies.get(_study_oid(row.subject) or "")
        patient = None
        share = look.shares.get(_id_after(row.subject, "share #"))
        if study is not None:
            patient = look.patients.get(study.patient_id)
        elif share is not None:
            patient = look.patients.get(share.patient_id)
            study = look.study_by_pk.get(share.study_id)
        elif row.subject.startswith("patient "):
            patient = look.by_pid.get(row.subject[8:])
        patient = patient or actor_patient
        on_what = ""
        if study is None and patient is None:
            held = _study_oid(row.subject)
            # A study the service never recorded (held back as a conflict,
            # then attached or not): named as such, in the page's language.
            on_what = (
                gettext("Study not recorded %(id)s", id=held)
                if held
                else row.subject  # a rule login, a session, the rules file
            )
        shown.append(
            {
                "id": row.id,
                "at": local_datetime(row.at),
                "event": row.event,
                "event_name": event_names.get(row.event, row.event),
                "who": who,
                "patient_id": patient.patient_id if patient else "",
                "patient_name": person_name(
                    study.patient_name if study is not None and study.patient_name else patient.name
                )
                if patient
                else "",
                "study": _study_text(study),
                "subject": on_what,
                "address": row.address,
                "detail": _detail(row, look),
            }
        )
    return shown


def about_patients(query, search):
    """Entries about the patients whose ID or name contains `search` (accents
    and case aside): who opened their studies, their passwords and shares."""
    patients = list(
        Patient.select(Patient.id, Patient.patient_id)
        .where(Patient.patient_id.contains(search) | Patient.search_name.contains(fold(search)))
        .limit(50)
    )
    if not patients:
        return query.where(AuditEvent.id < 0)
    pks = [p.id for p in patients]
    oids = [s.orthanc_id for s in Study.select(Study.orthanc_id).where(Study.patient.in_(pks))]
    shares = [f"share #{s.id}" for s in Share.select(Share.id).where(Share.patient.in_(pks))]
    subjects = (
        oids
        + [f"study {oid}" for oid in oids]
        + shares
        + [f"patient {p.patient_id}" for p in patients]
    )
    return query.where(AuditEvent.subject.in_(subjects))


def filtered(args):
    """The entries the filters of `args` select, newest first: `event`,
    `actor` (part of it), `since` and `until` (ISO dates, UTC), `patient`
    (ID or name: the entries about that patient). ValueError on a bad date."""
    query = AuditEvent.select().order_by(AuditEvent.id.desc())
    if args.get("event"):
        query = query.where(AuditEvent.event == args["event"])
    if args.get("actor"):
        query = query.where(AuditEvent.actor.contains(args["actor"]))
    if args.get("since"):
        query = query.where(AuditEvent.at >= datetime.datetime.fromisoformat(args["since"]))
    if args.get("until"):
        query = query.where(AuditEvent.at < datetime.datetime.fromisoformat(args["until"]))
    if args.get("patient", "").strip():
        query = about_patients(query, args["patient"].strip()[:100])
    return query


def csv_text(rows, fieldnames, header=None):
    """CSV for a spreadsheet; a cell starting with = + - @ would be a formula
    there, so it is quoted."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fieldnames, extrasaction="ignore")
    if header:
        writer.writerow(header)
    else:
        writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: ("'" + v if isinstance(v, str) and v[:1] in "=+-@" else v) for k, v in row.items()}
        )
    return out.getvalue()


def audit_event_names():
    """Each audit event with its name in the page's language."""
    names = {
        "login": gettext("Login"),
        "login_failed": gettext("Failed login"),
        "login_throttled": gettext("Login refused: too many attempts"),
        "logout": gettext("Logout"),
        "password_issued": gettext("Password issued"),
        "password_printed": gettext("Slip printed"),
        "rules_changed": gettext("Rules applied"),
        "rules_rejected": gettext("Rules file rejected"),
        "share_created": gettext("Link shared"),
        "share_revoked": gettext("Shared link revoked"),
        "study_access": gettext("Study opened"),
        "identity_conflict": gettext("Study held back: identity conflict"),
        "identity_resolved": gettext("Identity conflict resolved"),
        "audit_keyed": gettext("Audit log keyed from here on"),
        "report_attached": gettext("Report attached"),
    }
    return [(event, names.get(event, event)) for event in audit.EVENTS]


# The columns of the CSV export: the entries as written (for scripts: the
# header is the field names), or with `readable=1` as people read them (the
# header in the request's language).
RAW_COLUMNS = ["id", "at", "event", "actor", "subject", "address", "detail"]


def _readable_columns():
    return {
        "id": "#",
        "at_text": gettext("When"),
        "event_name": gettext("Event"),
        "who": gettext("Who"),
        "patient_id": gettext("Patient ID"),
        "patient_name": gettext("Patient name"),
        "study": gettext("Study"),
        "subject_text": gettext("On what"),
        "address": gettext("From"),
        "detail_text": gettext("Detail"),
    }


def audit_json(entries):
    """The entries as every audit list answers them: each as written (`at`
    in ISO UTC with "Z", `actor`, `subject`, `detail` terse English, as the
    keyed chain covers them) and as people read it (`at_text` local,
    `event_name`, `who`, `patient_id`, `patient_name`, `study`,
    `subject_text`, `detail_text` in the request's language)."""
    readable = rows_for_people(entries, dict(audit_event_names()))
    out = []
    for entry, shown in zip(entries, readable, strict=True):
        out.append(
            {
                "id": entry.id,
                "at": entry.at.isoformat() + "Z",
                "event": entry.event,
                "actor": entry.actor,
                "subject": entry.subject,
                "address": entry.address,
                "detail": entry.detail,
                "at_text": shown["at"],
                "event_name": shown["event_name"],
                "who": shown["who"],
                "patient_id": shown["patient_id"],
                "patient_name": shown["patient_name"],
                "study": shown["study"],
                "subject_text": shown["subject"],
                "detail_text": shown["detail"],
            }
        )
    return out


def audit_response():
    """The answer of GET /api/audit and GET /staff/api/audit, for an admin
    whom the URL has already let in: the entries newest first under the
    filters of `filtered` and `limit` (1-100000, 1000); `chain_ok` says
    whether the keyed chain is whole and holds the newest checkpoint,
    `verification` what is wrong. `format=csv` for a spreadsheet instead
    (`readable=1`: the columns people read)."""
    try:
        query = filtered(request.args)
    except ValueError:
        raise ApiError(400, "bad_field", gettext("Check the dates of the filter.")) from None
    limit = int_arg("limit", 1000, 1, 100000)
    rows = audit_json(list(query.limit(limit)))
    if request.args.get("format") == "csv":
        if request.args.get("readable") == "1":
            columns = _readable_columns()
            text = csv_text(rows, list(columns), header=columns)
        else:
            text = csv_text(rows, RAW_COLUMNS)
        return (
            text,
            200,
            {
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": "attachment; filename=audit.csv",
            },
        )
    report = auditchain.verify()
    return jsonify(
        events=rows,
        chain_ok=report.ok,
        chain_broken_at=report.broken_at,
        verification=report.as_dict(),
    )
