"""The dashboard's filters that need more than a WHERE clause: "today" is the
site's day (TIMEZONE), not UTC's, and the modality choices come from the
studies staff actually see."""

import datetime

import pytz
from flask import current_app

from .models import Study


def local_midnight_utc(now=None):
    """The start of today in the site's time zone, as the database's naive UTC."""
    zone = pytz.timezone(current_app.config["TIMEZONE"])
    now = now or datetime.datetime.now(datetime.timezone.utc)
    local = now.astimezone(zone)
    midnight = zone.localize(datetime.datetime(local.year, local.month, local.day))
    return midnight.astimezone(datetime.timezone.utc).replace(tzinfo=None)


def modality_codes(studies):
    """The distinct modality codes ("CT", "MR") of a query of studies, sorted."""
    codes = set()
    for (value,) in studies.select(Study.modalities).distinct().tuples():
        codes.update(code for code in (value or "").split("\\") if code)
    return sorted(codes)
