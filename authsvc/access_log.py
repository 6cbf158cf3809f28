"""A patient's own access log: who opened their studies and when, read from
the audit log's "study_access" entries (authsvc/audit.py).

Only read here, never written: the decision path that records those entries
is unchanged. The entries are found by an index on (event, subject), the
subject of a study_access entry being the study's Orthanc ID, so that the
patient's page costs one indexed query however long the audit grows.

Who opened a study is said the way the patient knows them:
- their own shared links, by number, with what each shares and since when;
- a physician's or an institution's login (tag rules), by its description
  and login name: the patient can recognise their physician, and ask about
  an institution they do not know;
- staff as "the hospital's staff" with the hospital's name, not the staff
  member's user name: that is an internal account name (not a person's name
  a patient can check), and a name handed to every patient would expose
  employees; the hospital answers for its staff, and its audit log (the
  admins' page) names the user for any inquiry the patient makes.

Only patients have this page: a share's holder or a rule login asking for
it gets a 404, like any page that is not theirs.
"""

from flask import Blueprint, current_app, redirect, url_for
from flask_babel import gettext

from .decision.principals import PatientPrincipal
from .i18n import local_date_time, study_date
from .models import AuditEvent, RuleLogin, Share, Study
from .ui import error_page, harden, render_page
from .web import current_principal

bp = Blueprint("access_log", __name__)
bp.after_request(harden)

# The newest entries shown: a page a phone can hold.
LIMIT = 200


def entries(patient, limit=LIMIT):
    """The audit's openings of `patient`'s studies, newest first, as
    {"when", "who", "kind", "study"} in the request's language."""
    studies = {s.orthanc_id: s for s in Study.select().where(Study.patient == patient)}
    if not studies:
        return []
    rows = list(
        AuditEvent.select(AuditEvent.at, AuditEvent.actor, AuditEvent.subject)
        .where((AuditEvent.event == "study_access") & AuditEvent.subject.in_(list(studies)))
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(limit)
    )
    shares = _named(
        rows,
        "share #",
        lambda ids: {
            str(s.id): s
            for s in Share.select().where(Share.id.in_(ids) & (Share.patient == patient))
        },
    )
    logins = _named(
        rows,
        "rule login ",
        lambda names: {r.name: r for r in RuleLogin.select().where(RuleLogin.name.in_(names))},
    )
    out = []
    for row in rows:
        study = studies[row.subject]
        kind, who = _who(row.actor, patient, shares, logins)
        out.append(
            {
                "when": local_date_time(row.at),
                "kind": kind,
                "who": who,
                "study": " · ".join(
                    p
                    for p in (study.description or gettext("Study"), study_date(study.study_date))
                    if p
                ),
            }
        )
    return out


def _named(rows, prefix, load):
    keys = {r.actor[len(prefix) :] for r in rows if r.actor.startswith(prefix)}
    return load(list(keys)) if keys else {}


def _who(actor, patient, shares, logins):
    if actor == f"patient #{patient.id}":
        return "patient", gettext("You")
    if actor.startswith("share #"):
        share = shares.get(actor[len("share #") :])
        if share is None:  # not one of this patient's: said without its number
            return "share", gettext("A shared link")
        return "share", gettext(
            "Your shared link #%(n)s, created %(when)s",
            n=share.id,
            when=local_date_time(share.created_at),
        )
    if actor.startswith("rule login "):
        name = actor[len("rule login ") :]
        login = logins.get(name)
        if login is not None and login.description:
            return "rule", gettext(
                "%(description)s (%(name)s)", description=login.description, name=name
            )
        return "rule", gettext("Login %(name)s", name=name)
    if actor.startswith("staff "):
        return "staff", gettext(
            "Staff of %(hospital)s", hospital=current_app.config["HOSPITAL_NAME"]
        )
    return "other", gettext("Someone else")


@bp.get("/portal/access")
def page():
    principal = current_principal()
    if principal is None:
        return redirect(url_for("pages.splash"))
    if not isinstance(principal, PatientPrincipal):
        return error_page(404, gettext("This page does not exist."))
    return render_page("access.html", entries=entries(principal.patient), limit=LIMIT)
