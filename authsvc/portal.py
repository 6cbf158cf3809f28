"""The portal: the studies a login may see, and a viewer made for a phone.

One page for every kind of login but staff: a patient (their studies, and
the links they share), a rule login (a physician or an institution: the
studies whose tags name them, with whose study each is) and a share's holder
(the shared studies, read-only). Which studies those are is decided only by
authsvc/decision/visibility.py (`visible_studies`, `may_see_study`), for every kind; the
images themselves come from Orthanc through nginx and its request filter,
which decides again on every request.

A study that is not the login's own is answered exactly like one that does not
exist (404), so its ID cannot be probed.
"""

import logging

from flask import Blueprint, current_app, jsonify, redirect, request, url_for
from flask_babel import gettext
from peewee import fn

from . import audit, sharing, sr
from .decision.principals import PatientPrincipal, RulePrincipal, SharePrincipal, StaffPrincipal
from .decision.visibility import may_see_study, visible_studies
from .errors import ApiError
from .i18n import local_date_time, person_name
from .models import Patient, Resource, Study
from .orthanc import ORTHANC_ID, OrthancError
from .sizes import download_sizes
from .text import fold
from .ui import error_page, harden, render_page
from .web import current_principal, services

log = logging.getLogger(__name__)
bp = Blueprint("portal", __name__)
bp.after_request(harden)


def _not_found_text():
    return gettext("This study does not exist, or it is not one of yours.")


def _study_or_none(principal, orthanc_id):
    if not ORTHANC_ID.fullmatch(orthanc_id or ""):
        return None
    study = Study.get_or_none(Study.orthanc_id == orthanc_id)
    return study if may_see_study(principal, study) else None


def first_instances(studies):
    """{study id: Orthanc ID of an image} for the thumbnails (one query): the
    first image, never a report or another instance that holds no image."""
    ids = [s.id for s in studies]
    if not ids:
        return {}
    firsts = (
        Resource.select(fn.MIN(Resource.id))
        .where(
            Resource.study.in_(ids) & (Resource.level == "instance") & Resource.content.is_null()
        )
        .group_by(Resource.study)
    )
    rows = Resource.select(Resource.study, Resource.orthanc_id).where(Resource.id.in_(firsts))
    return {r.study_id: r.orthanc_id for r in rows}


def report_instances(studies, content="pdf"):
    """{study id: [Orthanc IDs of its reports]}, in the order recorded: PDF
    reports, or with content="sr" structured reports."""
    ids = [s.id for s in studies]
    found = {}
    if ids:
        for r in (
            Resource.select(Resource.study, Resource.orthanc_id)
            .where(
                Resource.study.in_(ids)
                & (Resource.level == "instance")
                & (Resource.content == content)
            )
            .order_by(Resource.id)
        ):
            found.setdefault(r.study_id, []).append(r.orthanc_id)
    return found


# A rule login (an institution) may see thousands of studies: a page at a time.
RULE_PAGE_SIZE = 50
MAX_PAGE = 10**9  # a page number past it is only a number the database cannot hold


@bp.get("/portal")
def home():
    principal = current_principal()
    if principal is None:
        return redirect(url_for("pages.splash"))
    if principal.sees_everything:
        return redirect(url_for("staff.dashboard"))
    # Every kind's studies come from visible_studies alone; a search or a page
    # only narrows them.
    query = visible_studies(principal).join(Patient).select(Study, Patient)
    context = {"search": "", "page": 1, "more": False}
    limit, offset = 500, 0
    if isinstance(principal, RulePrincipal):
        search = request.args.get("q", "").strip()[:100]
        if search:
            query = query.where(
                Patient.patient_id.contains(search) | Patient.search_name.contains(fold(search))
            )
        page = min(max(_int(request.args.get("page"), 1), 1), MAX_PAGE)
        limit, offset = RULE_PAGE_SIZE + 1, (page - 1) * RULE_PAGE_SIZE
        context.update(search=search, page=page)
    studies = list(
        query.order_by(Study.study_date.desc(), Study.recorded_at.desc(), Study.id.desc())
        .limit(limit)
        .offset(offset)
    )
    if isinstance(principal, RulePrincipal) and len(studies) > RULE_PAGE_SIZE:
        studies, context["more"] = studies[:RULE_PAGE_SIZE], True
    if isinstance(principal, SharePrincipal):
        share = principal.share
        context["shared_by"] = person_name(share.patient.name) or share.patient.patient_id
        context["shared_until"] = local_date_time(share.expires_at)
    if isinstance(principal, PatientPrincipal):
        cfg = current_app.config
        context["share_days"] = int(cfg["SHARE_DEFAULT_DAYS"])
        context["share_max_days"] = int(cfg["SHARE_MAX_DAYS"])
    return render_page(
        "portal.html",
        studies=studies,
        thumbs=first_instances(studies),
        reports=report_instances(studies),
        text_reports=report_instances(studies, "sr"),
        sizes=download_sizes(services().orthanc, studies),
        **context,
    )


@bp.get("/portal/studies/<orthanc_id>")
def viewer(orthanc_id):
    principal = current_principal()
    if principal is None:
        return redirect(url_for("pages.splash"))
    study = _study_or_none(principal, orthanc_id)
    if study is None:
        return error_page(404, _not_found_text())
    if principal.sees_everything:
        # Staff's image requests are answered without looking up their study
        # (they see everything): their opening of a study is recorded here,
        # where they open it from the dashboard, for the patient's access log.
        audit.record_study_access(principal, study, request.remote_addr)
    return render_page(
        "viewer.html",
        study=study,
        reports=report_instances([study]).get(study.id, []),
        text_reports=report_instances([study], "sr").get(study.id, []),
        size=download_sizes(services().orthanc, [study]).get(study.id),
        full_viewer=offers_full_viewer(principal),
    )


def offers_full_viewer(principal):
    """Orthanc's Web Viewer speaks English only, shows names as DICOM writes
    them (NÚÑEZ^JOSÉ), has no way back to these pages and downloads far more
    than this viewer: not what a hospital's patient (or whoever they share
    with) expects, so only physicians' and institutions' logins and staff,
    who know such viewers, are offered it, and told it is in English."""
    return isinstance(principal, (RulePrincipal, StaffPrincipal))


@bp.get("/portal/studies/<orthanc_id>/reports/<instance_id>")
def text_report(orthanc_id, instance_id):
    """A structured report of a study as readable text (authsvc/sr.py), for
    the logins that may see the study. Read by the service from Orthanc, so
    nginx's check does not see it: the opening is audited here."""
    principal = current_principal()
    if principal is None:
        return redirect(url_for("pages.splash"))
    study = _study_or_none(principal, orthanc_id)
    report = (
        Resource.get_or_none(
            (Resource.orthanc_id == instance_id)
            & (Resource.study == study)
            & (Resource.content == "sr")
        )
        if study
        else None
    )
    if report is None:
        return error_page(404, _not_found_text())
    audit.record_study_access(principal, study, request.remote_addr)
    try:
        doc = sr.document(services().orthanc.get_bytes(f"/instances/{report.orthanc_id}/file"))
    except OrthancError as exc:
        log.warning("could not read report %s: %s", report.orthanc_id, exc)
        return error_page(
            503, gettext("The images cannot be read right now. Try again in a moment.")
        )
    except ValueError as exc:
        log.warning("report %s cannot be shown: %s", report.orthanc_id, exc)
        return error_page(404, gettext("This report cannot be shown as text."))
    return render_page("report.html", study=study, doc=doc)


def _int(value, default=0):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _image_size(orthanc, instance_id):
    """What the viewer needs of a series' first image: "rows" and "columns",
    so that it never asks Orthanc to enlarge a slice (more bytes, no more
    detail), and "windowed": whether the file gives its window (Orthanc's
    /rendered then uses it; without one, only /preview shows the image well)."""
    try:
        tags = orthanc.get(f"/instances/{instance_id}/simplified-tags")
    except OrthancError:
        return {"windowed": False}
    rows, columns = _int(tags.get("Rows")), _int(tags.get("Columns"))
    found = {"windowed": bool(tags.get("WindowCenter")) and bool(tags.get("WindowWidth"))}
    if rows > 0 and columns > 0:
        found.update(rows=rows, columns=columns)
    return found


@bp.get("/portal/api/studies/<orthanc_id>/series")
def series(orthanc_id):
    """The series of a study and their instances in slice order, for the viewer.
    Only resources the service has recorded for the study are listed: those
    are the ones Orthanc's filter lets this login read."""
    principal = current_principal()
    if principal is None:
        raise ApiError(401, "not_logged_in", gettext("Your session has ended. Log in again."))
    study = _study_or_none(principal, orthanc_id)
    if study is None:
        raise ApiError(404, "no_such_study", _not_found_text())
    content = {
        r.orthanc_id: r.content
        for r in Resource.select(Resource.orthanc_id, Resource.content).where(
            Resource.study == study
        )
    }
    known = set(content)
    orthanc = services().orthanc
    try:
        series_rows = orthanc.get(f"/studies/{study.orthanc_id}/series")
        instance_rows = orthanc.get(f"/studies/{study.orthanc_id}/instances")
    except OrthancError as exc:
        log.warning("viewer could not read study %s: %s", study.orthanc_id, exc)
        raise ApiError(
            503,
            "orthanc_unavailable",
            gettext("The images cannot be read right now. Try again in a moment."),
        ) from exc
    number = {
        i["ID"]: _int(i.get("MainDicomTags", {}).get("InstanceNumber"), 0)
        for i in instance_rows
        if i.get("ID") in known
    }
    result = []
    for s in series_rows:
        if s.get("ID") not in known:
            continue
        tags = s.get("MainDicomTags", {})
        # Images only: a report is a link of its own (report_instances).
        instances = sorted(
            (i for i in s.get("Instances", []) if i in number and not content[i]),
            key=lambda i: (number[i], i),
        )
        if not instances:
            continue
        result.append(
            {
                "id": s["ID"],
                "number": _int(tags.get("SeriesNumber"), 0),
                "modality": tags.get("Modality", ""),
                "description": tags.get("SeriesDescription", ""),
                "instances": instances,
                **_image_size(orthanc, instances[0]),
            }
        )
    result.sort(key=lambda s: (s["number"], s["id"]))
    return jsonify(study=study.orthanc_id, series=result)


# -- the patient's shares, for the portal's list ----------------------------


@bp.get("/portal/api/shares")
def my_shares():
    """The portal's list of the patient's shares: GET /api/shares's answer
    (sharing.py), for patients only, the refusals in the page's language."""
    principal = current_principal()
    if principal is None:
        raise ApiError(401, "not_logged_in", gettext("Your session has ended. Log in again."))
    if not isinstance(principal, PatientPrincipal):
        raise ApiError(403, "forbidden", gettext("Only patients can share their studies."))
    return sharing.shares_response(principal)
