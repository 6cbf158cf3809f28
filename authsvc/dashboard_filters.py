"""The dashboard's filters, shared by its rows and by the batch of slips
(which prints the pending slips of the rows shown): `q` (patient ID or
name), `today=1` or `day=YYYY-MM-DD` (the site's day, TIMEZONE, not UTC's),
`modality` (one code). The modality choices come from the studies staff see."""

import datetime

import pytz
from flask import current_app

from .models import Patient, Study
from .text import fold

ARGS = ("q", "today", "day", "modality")


def codes(modalities):
    """A study's modality codes: "CT\\MR" -> ["CT", "MR"]."""
    return [code for code in (modalities or "").split("\\") if code]


def local_day_utc(day):
    """The start and end of a day of the site's time zone, as the database's
    naive UTC."""
    zone = pytz.timezone(current_app.config["TIMEZONE"])
    start = zone.localize(datetime.datetime(day.year, day.month, day.day))
    end = zone.localize(
        datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time())
    )
    return tuple(t.astimezone(datetime.timezone.utc).replace(tzinfo=None) for t in (start, end))


def local_today():
    zone = pytz.timezone(current_app.config["TIMEZONE"])
    return datetime.datetime.now(datetime.timezone.utc).astimezone(zone).date()


def chosen_day(args):
    """The day a request names (`today=1` or `day=`), or None."""
    if args.get("today") == "1":
        return local_today()
    try:
        return datetime.date.fromisoformat(args.get("day", ""))
    except ValueError:
        return None


def filtered(query, args):
    """`query` (studies joined with their patients) narrowed by the filters;
    and the modality code asked for ("" for any), which callers check against
    each study's codes (the SQL match is a substring)."""
    search = args.get("q", "").strip()[:100]
    if search:
        query = query.where(
            Patient.patient_id.contains(search) | Patient.search_name.contains(fold(search))
        )
    day = chosen_day(args)
    if day is not None:
        start, end = local_day_utc(day)
        query = query.where(Study.recorded_at >= start, Study.recorded_at < end)
    modality = args.get("modality", "").strip().upper()[:16]
    if modality:
        query = query.where(Study.modalities.contains(modality))
    return query, modality


def batch_args(args):
    """The filters of a request, as arguments for the batch of slips."""
    return {k: args[k] for k in ARGS if args.get(k)}


def modality_codes(studies):
    """The distinct modality codes ("CT", "MR") of a query of studies, sorted."""
    found = set()
    for (value,) in studies.select(Study.modalities).distinct().tuples():
        found.update(codes(value))
    return sorted(found)
