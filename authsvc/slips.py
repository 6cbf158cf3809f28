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

from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import force_locale, gettext
from markupsafe import Markup

from . import display, publicurl, qr
from .i18n import LANGUAGES
from .models import Patient, Study
from .staff import staff_page, login_state, slip_language
from .ui import error_page, harden, render_page

bp = Blueprint("slips", __name__)
bp.after_request(harden)

LAYOUTS = ("a6", "a5", "thermal")


def qr_url(patient_id, password):
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    return base + "/#" + urlencode({"id": patient_id, "pw": password})


def qr_svg(data):
    """The QR code as inline SVG (one path; no script, no text from the data)."""
    return Markup(qr.inline_svg(data))


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
    layout = request.args.get("layout")
    layout = layout if layout in LAYOUTS else "a6"
    lang = request.args.get("slip_lang")
    lang = lang if lang in LANGUAGES else slip_language(patient)
    state, password = login_state(patient)
    body = None
    if password:
        with force_locale(lang):
            body = Markup(render_template(
                "slip_body.html", lang=lang, layout=layout, patient=patient, study=study,
                groups=password.split("-"), qr=qr_svg(qr_url(patient.patient_id, password)),
                public_url=current_app.config["PUBLIC_URL"].rstrip("/"),
                hospital=current_app.config["HOSPITAL_NAME"],
                void=publicurl.unusable(current_app.config["PUBLIC_URL"])))
    return render_page(
        "slip.html", patient=patient, study=study, layout=layout, layouts=LAYOUTS,
        slip_lang=lang, state=state, body=body, auto_print=request.args.get("print") == "1",
        password_set_at=patient.password_set_at.isoformat() if patient.password_set_at else "",
        display_available=display.available(),
        back=url_for("staff.dashboard"))
