"""Languages of the pages: Spanish and English through gettext catalogs
(Flask-Babel), dates in the locale's format.

The language of a request: `?lang=` (the switch on every page, remembered in
a cookie), else that cookie, else the browser's Accept-Language, else
DEFAULT_LANGUAGE. Catalogs live in authsvc/translations/ with their compiled
.mo files committed, so nothing is compiled at install or in CI;
tests/test_pages_i18n.py checks that the .mo files match the .po files and
that every message of the code and templates has a Spanish translation.
"""

import datetime
from urllib.parse import urlencode

import pytz
from flask import current_app, request
from flask_babel import Babel, format_date, format_time, get_locale, gettext

from .config import ConfigError

LANGUAGES = {"es": "Español", "en": "English"}
COOKIE = "lang"


def requested_language():
    """A language named by ?lang=, when it is one we have."""
    lang = request.args.get("lang", "")
    return lang if lang in LANGUAGES else None


def select_locale():
    lang = requested_language() or request.cookies.get(COOKIE)
    if lang in LANGUAGES:
        return lang
    best = request.accept_languages.best_match(list(LANGUAGES))
    return best or current_app.config["DEFAULT_LANGUAGE"]


def _remember_language(response):
    lang = requested_language()
    if lang and request.cookies.get(COOKIE) != lang:
        response.set_cookie(
            COOKIE,
            lang,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure,
            path="/",
        )
    return response


def lang_url(lang):
    """The current page in another language (its other query arguments kept)."""
    args = request.args.to_dict(flat=False)
    args["lang"] = [lang]
    return request.path + "?" + urlencode(args, doseq=True)


def current_language():
    return str(get_locale() or current_app.config["DEFAULT_LANGUAGE"])


def study_date(value):
    """A DICOM date (YYYYMMDD) in the locale's medium format; odd values as they are."""
    try:
        day = datetime.datetime.strptime(value or "", "%Y%m%d").date()
    except ValueError:
        return value or ""
    return format_date(day, "medium")


def local_datetime(value):
    """THE date and time of every staff page and slip: a naive UTC datetime of
    the database in the site's TIMEZONE and the page's language, the date as
    study dates are shown (medium) and the time short: "5 dic 2026, 18:05",
    "Dec 5, 2026, 6:05 PM"."""
    if value is None:
        return ""
    value = value.replace(tzinfo=datetime.timezone.utc)
    return f"{format_date(value, 'medium')}, {format_time(value, 'short')}"


# The name the patients' pages used; one format for everyone.
local_date_time = local_datetime


def person_name(value):
    """A DICOM person name for people: "NÚÑEZ^JOSÉ^A" -> "NÚÑEZ, JOSÉ A"."""
    parts = [p.strip() for p in (value or "").split("=")[0].split("^")]
    family, given = (parts[0] if parts else ""), " ".join(p for p in parts[1:3] if p)
    return f"{family}, {given}" if family and given else (family or given)


def splash_text():
    """The warning of the splash page and the slips, in the current language:
    the site's own text when SPLASH_TEXT has one, else the built-in text."""
    custom = current_app.config.get("SPLASH_TEXT") or {}
    text = custom.get(current_language()) if isinstance(custom, dict) else None
    if isinstance(text, str) and text.strip():
        return text
    return gettext(
        "Without this password, only the system administrators and the "
        "physicians involved can see the images."
    )


def lost_slip_text():
    """What to do about a lost slip, on the login page, in the current
    language: the site's own text when LOST_SLIP_TEXT has one, else the
    built-in text."""
    custom = current_app.config.get("LOST_SLIP_TEXT") or {}
    text = custom.get(current_language()) if isinstance(custom, dict) else None
    if isinstance(text, str) and text.strip():
        return text
    return gettext(
        "Lost your slip? Ask for a new one where your study was made, with your "
        "identity document: a new password is printed, and the old one stops working."
    )


def init_app(app):
    # Wrong values fail at start, not as errors on every page.
    if app.config["DEFAULT_LANGUAGE"] not in LANGUAGES:
        raise ConfigError(f"DEFAULT_LANGUAGE must be one of {sorted(LANGUAGES)}")
    try:
        pytz.timezone(app.config["TIMEZONE"])
    except pytz.UnknownTimeZoneError:
        raise ConfigError(f"TIMEZONE {app.config['TIMEZONE']!r} is not an IANA time zone") from None
    Babel(
        app,
        locale_selector=select_locale,
        default_locale=app.config["DEFAULT_LANGUAGE"],
        default_timezone=app.config["TIMEZONE"],
    )
    app.after_request(_remember_language)
    app.jinja_env.globals.update(
        LANGUAGES=LANGUAGES,
        lang_url=lang_url,
        current_language=current_language,
        study_date=study_date,
        local_datetime=local_datetime,
        local_date_time=local_date_time,
        person_name=person_name,
        splash_text=splash_text,
        lost_slip_text=lost_slip_text,
    )
