"""The patient portal: the studies a login may see, and a viewer made for a
phone. Which studies those are is decided only by authsvc/access.py
(`visible_studies`, `may_see_study`); the images themselves come from Orthanc
through nginx and its request filter, which decides again on every request.

A study that is not the login's own is answered exactly like one that does not
exist (404), so its ID cannot be probed.
"""

import logging

from flask import Blueprint, jsonify, redirect, url_for
from flask_babel import gettext
from peewee import fn

from .access import may_see_study, visible_studies
from .errors import ApiError
from .models import Resource, Study
from .orthanc import ORTHANC_ID, OrthancError
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
    """{study id: Orthanc ID of an instance} for the thumbnails (one query)."""
    ids = [s.id for s in studies]
    if not ids:
        return {}
    firsts = (Resource.select(fn.MIN(Resource.id))
              .where(Resource.study.in_(ids) & (Resource.level == "instance"))
              .group_by(Resource.study))
    rows = Resource.select(Resource.study, Resource.orthanc_id).where(Resource.id.in_(firsts))
    return {r.study_id: r.orthanc_id for r in rows}


@bp.get("/portal")
def home():
    principal = current_principal()
    if principal is None:
        return redirect(url_for("pages.splash"))
    if principal.kind == "staff":
        return redirect(url_for("staff.dashboard"))
    studies = list(visible_studies(principal)
                   .order_by(Study.study_date.desc(), Study.recorded_at.desc(), Study.id.desc())
                   .limit(500))
    return render_page("portal.html", studies=studies, thumbs=first_instances(studies))


@bp.get("/portal/studies/<orthanc_id>")
def viewer(orthanc_id):
    principal = current_principal()
    if principal is None:
        return redirect(url_for("pages.splash"))
    study = _study_or_none(principal, orthanc_id)
    if study is None:
        return error_page(404, _not_found_text())
    return render_page("viewer.html", study=study)


def _int(value, default=0):
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


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
    known = {r.orthanc_id for r in Resource.select(Resource.orthanc_id)
             .where(Resource.study == study)}
    orthanc = services().orthanc
    try:
        series_rows = orthanc.get(f"/studies/{study.orthanc_id}/series")
        instance_rows = orthanc.get(f"/studies/{study.orthanc_id}/instances")
    except OrthancError as exc:
        log.warning("viewer could not read study %s: %s", study.orthanc_id, exc)
        raise ApiError(503, "orthanc_unavailable",
                       gettext("The images cannot be read right now. Try again in a moment."))
    number = {i["ID"]: _int(i.get("MainDicomTags", {}).get("InstanceNumber"), 0)
              for i in instance_rows if i.get("ID") in known}
    result = []
    for s in series_rows:
        if s.get("ID") not in known:
            continue
        tags = s.get("MainDicomTags", {})
        instances = sorted((i for i in s.get("Instances", []) if i in number),
                           key=lambda i: (number[i], i))
        if not instances:
            continue
        result.append({"id": s["ID"], "number": _int(tags.get("SeriesNumber"), 0),
                       "modality": tags.get("Modality", ""),
                       "description": tags.get("SeriesDescription", ""),
                       "instances": instances})
    result.sort(key=lambda s: (s["number"], s["id"]))
    return jsonify(study=study.orthanc_id, series=result)
