"""The physician and institution values of recent studies that no rule
matches: what staff need to write the rules from (GÓMEZ^MARÍA ELENA, as the
modality wrote it). A page and its JSON (staff), and `flask unmatched-tags`
(`make unmatched-tags`) for the IT person who edits the rules file."""

import datetime
import json

from flask import Blueprint, jsonify
from flask_babel import gettext
from peewee import fn

from .ingest import ACCESS_TAGS
from .models import RuleMatch, Study, utcnow
from .ui import render_page

bp = Blueprint("unmatched", __name__)

DAYS = 30


def unmatched_values(days=DAYS):
    """[(keyword, value, studies, newest recorded_at)] of the studies
    recorded in the last `days` days that no rule login sees, most studies
    first."""
    since = utcnow() - datetime.timedelta(days=days)
    matched = RuleMatch.select(RuleMatch.study).where(RuleMatch.study == Study.id)
    query = Study.select(Study.access_tags, Study.recorded_at).where(
        (Study.recorded_at >= since) & ~fn.EXISTS(matched)
    )
    found = {}
    for study in query:
        for keyword, values in json.loads(study.access_tags or "{}").items():
            for value in set(values):
                count, newest = found.get((keyword, value), (0, study.recorded_at))
                found[(keyword, value)] = (count + 1, max(newest, study.recorded_at))
    order = {k: n for n, k in enumerate(ACCESS_TAGS)}
    return sorted(
        ((k, v, n, at) for (k, v), (n, at) in found.items()),
        key=lambda row: (-row[2], order.get(row[0], 99), row[1]),
    )


def tag_names():
    """The five access tags in the page's language."""
    return {
        "InstitutionName": gettext("Institution"),
        "ReferringPhysicianName": gettext("Referring physician"),
        "ResponsibleOrganization": gettext("Responsible organization"),
        "PerformingPhysicianName": gettext("Performing physician"),
        "NameOfPhysiciansReadingStudy": gettext("Reading physician"),
    }


def _rows():
    from .i18n import local_datetime

    names = tag_names()
    return [
        {
            "keyword": k,
            "tag_name": names.get(k, k),
            "value": v,
            "studies": n,
            "newest": local_datetime(at),
        }
        for k, v, n, at in unmatched_values()
    ]


@bp.get("/staff/api/unmatched-tags")
def values():
    from .staff import staff_or_error

    staff_or_error()
    return jsonify(values=_rows(), days=DAYS)


@bp.get("/staff/unmatched")
def page():
    from .staff import rules_error, staff_page

    principal, response = staff_page()
    if response:
        return response
    return render_page("unmatched.html", rows=_rows(), days=DAYS, rules_error=rules_error())
