"""The list of identity conflicts (authsvc/conflicts.py): one JSON shape for
GET /api/ingest/conflicts (scripts) and GET /staff/api/conflicts (the
dashboard), and for the held studies of GET /api/ingest/problems.

Each entry has the conflict's own fields as the service keeps them
(`conflicts.conflict_json`: DICOM's patient name and dates, the reason in
English) and the same for people in the request's language (`*_text`), with
what an admin may do about it: the same rule as the study list's rows."""

from flask import jsonify, url_for
from flask_babel import gettext

from . import conflicts
from .i18n import local_datetime, person_name, study_date
from .web import int_arg

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


def entry(row, principal):
    """One held study, for `principal` (staff; `may_resolve` for admins)."""
    data = conflicts.conflict_json(row)
    data.update(
        reason_text=conflicts.reason(row, gettext),
        patient_name_text=person_name(data["patient_name"]),
        login_name_text=(
            person_name(data["login_name"]) if data["login_name"] is not None else None
        ),
        study_date_text=study_date(data["study_date"]),
        birth_date_text=study_date(data["birth_date"]),
        login_birth_date_text=(
            study_date(data["login_birth_date"]) if data["login_birth_date"] else None
        ),
        modalities_text=", ".join(data["modalities"]),
        detected_text=local_datetime(row.detected_at),
        attach_choices=[
            {"patient_id": login, "label": gettext("Attach to login %(login)s", login=login)}
            for login in data["attach_to"]
        ],
        separate_label=gettext("Make a separate login %(login)s", login=data["separate_login_id"]),
        may_resolve=principal.is_admin,
        resolve_url=url_for("staff.resolve_conflict", orthanc_id=row.study_orthanc_id),
    )
    return data


def conflicts_response(principal):
    """The answer of both URLs, for a staff member each has already let in:
    `{"conflicts": [...]}`, newest first; `?limit=` (1-1000, 200)."""
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    return jsonify(conflicts=[entry(row, principal) for row in conflicts.open_conflicts(limit)])
