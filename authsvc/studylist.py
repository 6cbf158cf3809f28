"""The list of studies a session may see: one query, one JSON shape, one
answer for GET /api/studies (any login; scripts with a token) and GET
/staff/api/studies (the dashboard; staff only). Which studies those are comes
from authsvc/decision/visibility.py's `visible_studies` alone: the filters
only narrow them.

Every row has the study's own fields as DICOM has them (`date`, `modalities`,
`patient_name`) and the same for people in the request's language (`*_text`);
staff's rows also say how the patient's login stands and link to its slip.
"""

import json

from flask import current_app, jsonify, request, url_for
from flask_babel import gettext

from . import dashboard_filters, display
from .decision.visibility import visible_studies
from .i18n import LANGUAGES, local_datetime, person_name, study_date
from .models import Patient, RuleLogin, RuleMatch, Study
from .web import MAX_INT, int_arg

# A page of the list: `limit` rows from `offset`.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


# -- login state of a patient ----------------------------------------------


def login_state(patient):
    """(state, pending password or None). States: none (no login yet),
    pending (new password, slip not printed), printed, issued (a password
    of which no copy is kept, e.g. on a server without a display key)."""
    if not patient.password_hash:
        return "none", None
    pending = display.pending_password(patient)
    if pending:
        return "pending", pending
    printed = patient.slip_printed_at
    if printed and patient.password_set_at and printed >= patient.password_set_at:
        return "printed", None
    return "issued", None


def state_text(state, patient):
    """Short: the dashboard keeps one line per study."""
    if state == "pending":
        return gettext("Slip not printed")
    if state == "printed":
        return gettext("Printed %(when)s", when=local_datetime(patient.slip_printed_at))
    if state == "issued":
        return gettext("Given without a slip")
    return gettext("No login")


def slip_language(patient):
    lang = patient.slip_language
    return lang if lang in LANGUAGES else current_app.config["DEFAULT_LANGUAGE"]


# -- the query --------------------------------------------------------------


def filtered_rows(principal, args, pending_only=False, limit=200, offset=0):
    """The studies `principal` sees under the filters of `args`
    (dashboard_filters: `q`, `today`/`day`, `modality`; and for staff
    `pending=1`), newest first, each as (study, login state, pending password
    or None): the rows of the list, and the slips a batch prints. `limit`
    and `offset` page the query; the modality and pending checks after it may
    leave fewer rows than `limit`."""
    query, modality = dashboard_filters.filtered(visible_studies(principal).join(Patient), args)
    # Whether a slip is pending is staff's business: other logins' filters
    # never look at the display copy.
    pending_only = principal.sees_everything and (pending_only or args.get("pending") == "1")
    if pending_only:
        # The display copy decides (login_state below); this narrows the query.
        query = query.where(Patient.display_password.is_null(False))
    states, out = {}, []
    newest = query.select(Study, Patient).order_by(Study.recorded_at.desc(), Study.id.desc())
    for study in newest.limit(limit).offset(offset):
        patient = study.patient
        if not principal.sees_everything:
            # The login state (and its display copy) is shown to staff only:
            # not even decrypted for others.
            states[patient.id] = (None, None)
        elif patient.id not in states:
            states[patient.id] = login_state(patient)
        state, pending = states[patient.id]
        if modality and modality not in dashboard_filters.codes(study.modalities):
            continue  # the SQL matched a substring ("CT" in "CTX")
        if pending_only and state != "pending":
            continue
        out.append((study, state, pending))
    return out


def rule_logins_of(studies):
    """{study id: names of the rule logins that see it}, in one query."""
    found = {}
    if studies:
        for match in (
            RuleMatch.select(RuleMatch.study, RuleLogin.name)
            .join(RuleLogin)
            .where(RuleMatch.study.in_([s.id for s in studies]))
            .order_by(RuleLogin.name)
        ):
            found.setdefault(match.study_id, []).append(match.login.name)
    return found


# -- the JSON ---------------------------------------------------------------


def study_json(study, principal, state, pending, rule_logins):
    """A study as every list answers it; staff's rows have the staff fields."""
    patient = study.patient
    codes = dashboard_filters.codes(study.modalities)
    data = {
        "orthanc_id": study.orthanc_id,
        "study_instance_uid": study.study_uid,
        "date": study.study_date,
        "date_text": study_date(study.study_date),
        "description": study.description,
        "modalities": codes,
        "modalities_text": ", ".join(codes),
        "patient_id": patient.patient_id,
        "patient_name": study.patient_name,  # this study's own, as DICOM writes it
        "patient_name_text": person_name(study.patient_name),
        "viewer_url": url_for("portal.viewer", orthanc_id=study.orthanc_id),
    }
    if not principal.sees_everything:
        return data
    data.update(
        recorded_at=study.recorded_at.isoformat() + "Z",
        recorded_text=local_datetime(study.recorded_at),
        access_tags=json.loads(study.access_tags),
        rule_logins=rule_logins.get(study.id, []),
        patient_has_login=patient.password_hash is not None,
        login=state,
        login_text=state_text(state, patient),
        # The display copy of a password whose slip is not printed yet, in
        # groups as the slip prints it.
        password=pending.split("-") if pending else None,
        password_set_at=patient.password_set_at.isoformat() if patient.password_set_at else None,
        slip_language=slip_language(patient),
        slip_url=url_for("slips.slip", patient_id=patient.patient_id, study=study.orthanc_id),
        report_url=url_for("attach.attach_report", orthanc_id=study.orthanc_id),
        reissue_url=url_for("staff.reissue", patient_id=patient.patient_id),
    )
    return data


def studies_response(principal):
    """The answer of both URLs, for a principal each has already let in.
    Filters: `q` (patient ID or name), `today=1` or `day=YYYY-MM-DD` (recorded
    that day in TIMEZONE), `modality` (one code), `pending=1` (staff: slips
    not printed yet); `limit` (1-1000, 100) and `offset`. `modalities` lists
    the codes of the studies the login sees, for a filter's choices; staff
    also get `batch_url`, the batch of slips of the rows shown."""
    limit = int_arg("limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = int_arg("offset", 0, 0, MAX_INT)
    rows = filtered_rows(principal, request.args, limit=limit, offset=offset)
    rule_logins = rule_logins_of([s for s, _, _ in rows]) if principal.sees_everything else {}
    answer = {
        "studies": [study_json(s, principal, state, pw, rule_logins) for s, state, pw in rows],
        "search": request.args.get("q", "").strip()[:100],
        "modalities": dashboard_filters.modality_codes(visible_studies(principal)),
    }
    if principal.sees_everything:
        answer["batch_url"] = url_for("slips.batch", **dashboard_filters.batch_args(request.args))
    return jsonify(answer)
