"""The slip given to the patient: hospital, name and ID, study date, the
server's address, the password in groups of four, a QR code, and the splash
warning; in the language chosen for the patient; on an A6 or A5 sheet or an
80 mm thermal receipt (CSS @page).

The QR code holds PUBLIC_URL + "/#id=<patient ID>&pw=<password>": the ID and
password ride in the URL fragment, which browsers never send to a server, so
they reach no log. The splash page reads them into its form.

The slip shows the password only while the encrypted display copy exists
(authsvc/display.py); once staff confirm that it printed, the copy is wiped
and only a reissue gives a new slip.
"""

from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask_babel import force_locale, gettext
from markupsafe import Markup

from . import audit, display, publicurl, qr
from .dashboard_filters import batch_args, codes
from .i18n import LANGUAGES, local_datetime
from .models import Patient, Study, utcnow
from .report_block import report_block_png
from .staff import staff_page
from .studylist import filtered_rows, login_state, slip_language
from .ui import error_page, harden, render_page

bp = Blueprint("slips", __name__)
bp.after_request(harden)

LAYOUTS = ("a6", "a5", "thermal")
MAX_STUDIES = 3  # on the slip (an A6 sheet holds 3 and "and more")


def qr_url(patient_id, password):
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return base + "/#" + urlencode({"id": patient_id, "pw": password})


def qr_svg(data):
    """The QR code as inline SVG (one path; no script, no text from the data)."""
    return Markup(qr.inline_svg(data))


def patient_studies(patient):
    """The studies a slip names, newest first (a patient with two studies
    knows which the password opens)."""
    return list(
        Study.select()
        .where(Study.patient == patient)
        .order_by(Study.study_date.desc(), Study.recorded_at.desc())
        .limit(MAX_STUDIES + 1)
    )


def slip_body(patient, password, layout, lang, suffix=""):
    """One slip, in the patient's language. `suffix` keeps the element IDs of
    a batch's slips apart."""
    studies = patient_studies(patient)
    with force_locale(lang):
        return Markup(
            render_template(
                "slip_body.html",
                lang=lang,
                layout=layout,
                patient=patient,
                suffix=suffix,
                studies=studies[:MAX_STUDIES],
                more=len(studies) > MAX_STUDIES,
                modalities=lambda study: ", ".join(codes(study.modalities)),
                printed=local_datetime(utcnow()),
                groups=password.split("-"),
                qr=qr_svg(qr_url(patient.patient_id, password)),
                public_url=current_app.config["PUBLIC_URL"].rstrip("/"),
                hospital=current_app.config["HOSPITAL_NAME"],
                void=publicurl.unusable(current_app.config["PUBLIC_URL"]),
            )
        )


def chosen_layout():
    layout = request.args.get("layout")
    return layout if layout in LAYOUTS else "a6"


@bp.get("/staff/slips/<path:patient_id>")
def slip(patient_id):
    principal, response = staff_page()
    if response:
        return response
    patient = Patient.get_or_none(Patient.patient_id == patient_id)
    if patient is None:
        return error_page(404, gettext("There is no patient with this ID."))
    studies = Study.select().where(Study.patient == patient)
    study = None
    if request.args.get("study"):
        study = studies.where(Study.orthanc_id == request.args["study"]).first()
    if study is None:
        study = studies.order_by(Study.study_date.desc(), Study.recorded_at.desc()).first()
    layout = chosen_layout()
    lang = request.args.get("slip_lang")
    lang = lang if lang in LANGUAGES else slip_language(patient)
    state, password = login_state(patient)
    body = slip_body(patient, password, layout, lang) if password else None
    return render_page(
        "slip.html",
        patient=patient,
        study=study,
        layout=layout,
        layouts=LAYOUTS,
        slip_lang=lang,
        state=state,
        body=body,
        auto_print=request.args.get("print") == "1",
        password_set_at=patient.password_set_at.isoformat() if patient.password_set_at else "",
        display_available=display.available(),
        block_url=url_for("slips.report_block", patient=patient.patient_id, slip_lang=lang),
        back=url_for("staff.dashboard"),
    )


@bp.get("/staff/batch-slips")
def batch():
    """Every pending slip of the dashboard's filters (a day: `today=1` or
    `day=YYYY-MM-DD`; a modality; a search) as one print job, one slip per
    sheet or receipt, each in its patient's language. Printing confirmed marks
    them all printed (POST /staff/api/slips/printed)."""
    principal, response = staff_page()
    if response:
        return response
    layout = chosen_layout()
    slips, seen = [], set()
    for study, _state, password in filtered_rows(principal, request.args, pending_only=True):
        patient = study.patient
        if patient.id in seen:
            continue
        seen.add(patient.id)
        lang = slip_language(patient)
        slips.append(
            {
                "patient_id": patient.patient_id,
                "language": lang,
                "password_set_at": patient.password_set_at.isoformat(),
                "body": slip_body(patient, password, layout, lang, suffix=f"-{len(slips) + 1}"),
            }
        )
    return render_page(
        "slip_batch.html",
        slips=slips,
        layout=layout,
        items=[{k: v for k, v in s.items() if k != "body"} for s in slips],
        layouts=LAYOUTS,
        filters=batch_args(request.args),
        auto_print=request.args.get("print") == "1" and slips,
        back=url_for("staff.dashboard"),
    )


@bp.get("/staff/report-block")
def report_block():
    """The block to paste into the written report: the QR code, address, ID
    and password as a PNG, while the password is kept (before its slip is
    confirmed printed). Served no-store like every staff page."""
    principal, response = staff_page()
    if response:
        return response
    patient = Patient.get_or_none(Patient.patient_id == request.args.get("patient", ""))
    if patient is None:
        return error_page(404, gettext("There is no patient with this ID."))
    _state, password = login_state(patient)
    if not password:
        return error_page(
            409, gettext("This password is no longer kept: reissue it to print a slip.")
        )
    lang = request.args.get("slip_lang")
    lang = lang if lang in LANGUAGES else slip_language(patient)
    url = current_app.config["PUBLIC_URL"].rstrip("/")
    with force_locale(lang):
        labels = (gettext("Address"), gettext("Patient ID"), gettext("Password"))
    png = report_block_png(
        qr_url(patient.patient_id, password),
        labels,
        (url, patient.patient_id, " ".join(password.split("-"))),
    )
    audit.record(
        "password_printed",
        actor=principal.audit_name,
        subject=f"patient {patient.patient_id}",
        address=request.remote_addr,
        detail="block for the report downloaded; display copy kept",
    )
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in patient.patient_id)
    return Response(
        png,
        mimetype="image/png",
        headers={"Content-Disposition": f'attachment; filename="access-{safe}.png"'},
    )
