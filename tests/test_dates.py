"""One date and time format on every staff page and slip, in the
site's TIMEZONE and the page's language (in-process, a real SQLite file).
There used to be four: "1/12/26, 18:19", "11 ene 2025", "1 dic 2026, 18:27"
and the audit's UTC "2026-12-01 22:21:42"."""

import datetime
import re

from authsvc import i18n
from authsvc.models import Patient, Study
from tests.pages_world import site, staff_client, world  # noqa: F401 (fixtures)

# Spanish: "2 dic 2026, 1:16"; English: "Dec 2, 2026, 1:16 AM".
ONE_FORMAT = {
    "es": re.compile(r"^\d{1,2} [a-z]{3,4}\.? \d{4}, \d{1,2}:\d{2}$"),
    "en": re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s[AP]M$"),
}
OTHER_STYLES = re.compile(r"\d{1,2}/\d{1,2}/\d{2,4}|\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")
WHEN = datetime.datetime(2026, 12, 2, 3, 16)  # UTC: 1 Dec, 23:16 in Caracas (UTC-4)


def test_local_datetime_is_the_site_time_in_the_page_language(site):
    with site.test_request_context("/?lang=es"):
        assert i18n.local_datetime(WHEN) == "1 dic 2026, 23:16"
    with site.test_request_context("/?lang=en"):
        assert i18n.local_datetime(WHEN).replace("\u202f", " ") == "Dec 1, 2026, 11:16 PM"
        assert i18n.local_date_time(WHEN) == i18n.local_datetime(WHEN)
        assert i18n.local_datetime(None) == ""


def dates_in(value, keys=("recorded_text", "created", "expires", "detected")):
    """The date-and-time values of a JSON answer, wherever they are."""
    if isinstance(value, list):
        return [d for v in value for d in dates_in(v, keys)]
    if isinstance(value, dict):
        return [v for k, v in value.items() if k in keys and v] + [
            d for v in value.values() if isinstance(v, (list, dict)) for d in dates_in(v, keys)
        ]
    return []


def test_every_staff_json_uses_the_one_format(site, world):
    for lang in ("es", "en"):
        c = staff_client(site, lang=lang)
        # A printed slip, a share: each page's dates are there to be seen.
        row = next(
            r for r in c.get("/staff/api/studies").json["studies"] if r["orthanc_id"] == world["a"]
        )
        assert c.post(
            "/staff/api/patients/P-1/printed", json={"password_set_at": row["password_set_at"]}
        ).status_code in (200, 409)
        patient = c.application.test_client()
        assert (
            patient.post(
                "/api/login", json={"patient_id": "P-2", "password": world["pw_b"]}
            ).status_code
            == 200
        )
        assert patient.post("/api/shares", json={"days": 3}).status_code in (200, 201)
        found = []
        for url in (
            "/staff/api/studies",
            "/staff/api/users",
            "/staff/api/shares?all=1",
            "/staff/api/conflicts",
        ):
            answer = c.get(url, headers={"Accept-Language": lang}).json
            found += dates_in(answer)
            # Machine values (ISO, for scripts and sent back by the page: the
            # "..._at" fields) are not shown.
            shown = re.sub(r"'[a-z_]+_at': '[^']*'", "", str(answer))
            assert not OTHER_STYLES.search(shown), (url, answer)
        printed = next(
            r for r in c.get("/staff/api/studies").json["studies"] if r["orthanc_id"] == world["a"]
        )
        assert printed["login"] == "printed"
        found.append(re.sub(r"^(Impresa el|Printed) ", "", printed["login_text"]))
        assert len(found) >= 5, found
        for value in found:
            assert ONE_FORMAT[lang].match(value.replace("\u202f", " ")), (lang, value)


def test_the_dashboard_time_is_the_site_time(site, world):
    """Recorded at 03:16 UTC is 23:16 the day before in Caracas."""
    Study.update(recorded_at=WHEN).where(Study.orthanc_id == world["a"]).execute()
    c = staff_client(site, lang="es")
    row = next(
        r for r in c.get("/staff/api/studies").json["studies"] if r["orthanc_id"] == world["a"]
    )
    assert row["recorded_text"] == "1 dic 2026, 23:16"
    assert row["recorded_at"] == "2026-12-02T03:16:00Z"  # the same moment, for scripts
    assert Patient.select().count() == 2
