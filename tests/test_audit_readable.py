"""An audit log people can read: "who opened José Núñez's CT?"
answered on the audit page and its CSV, in the site's time zone and the
page's language, with the patient, the physician login or the share's
patient, and the study's date and description. In-process (the decisions
through /internal/authorize, as Orthanc's filter asks them)."""

import csv
import io
import zoneinfo

import pytest

from authsvc import audit, ingest
from authsvc.cli import ensure_admin
from authsvc.models import AuditEvent
from tests.helpers import fake_study, write_rules

ADMIN_PW = "admin password long enough"
REF = "0008,0090"
# Words of the entries as stored (English, for logs and scripts) that must
# not reach a Spanish page.
ENGLISH = (
    "patient ",
    "share #",
    "rule login",
    "reissued",
    "staff ",
    "studies match",
    "study ",
    "Patient",
    "Physician",
    "Link shared",
)


@pytest.fixture
def world(app):
    nunez = fake_study("P-77", "1", name="NÚÑEZ^JOSÉ", values={REF: ["GÓMEZ^MARÍA"]})
    nunez["tags"].update(StudyDate="20261201", StudyDescription="TC DE CRÁNEO")
    other = fake_study("P-88", "2", name="PEREZ^ANA", values={REF: ["GÓMEZ^MARÍA"]})
    pw = {
        "P-77": ingest.store_study(nunez["study_orthanc_id"], nunez),
        "P-88": ingest.store_study(other["study_orthanc_id"], other),
    }
    rule_pw = write_rules(
        app,
        [
            {
                "login": "dra-gomez",
                "rules": [{"tag": "ReferringPhysicianName", "value": "GOMEZ^MARIA"}],
            }
        ],
        ["dra-gomez"],
    )
    ensure_admin("admin", ADMIN_PW)

    def login(**body):
        c = app.test_client()
        r = c.post("/api/login", json=body)
        assert r.status_code == 200, r.json
        return c, r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]

    def opens(token, study):
        r = app.test_client().post(
            "/internal/authorize",
            headers={"X-Authsvc-Secret": "i" * 40},
            json={"method": "GET", "uri": f"/studies/{study}", "token": token},
        )
        assert r.json["granted"]

    patient, token = login(patient_id="P-77", password=pw["P-77"])
    opens(token, nunez["study_orthanc_id"])
    share = patient.post("/api/shares", json={"study": nunez["study_orthanc_id"]}).json
    _, share_token = login(share=share["url"].split("#share=")[1])
    opens(share_token, nunez["study_orthanc_id"])
    _, rule_token = login(login="dra-gomez", password=rule_pw["dra-gomez"])
    opens(rule_token, nunez["study_orthanc_id"])
    opens(rule_token, other["study_orthanc_id"])
    audit.access_notes.flush()  # the decisions' entries, written off the request
    admin, _ = login(username="admin", password=ADMIN_PW)
    assert admin.post("/api/patients/P-77/credentials", json={}).status_code == 200
    return {"admin": admin, "nunez": nunez["study_orthanc_id"], "other": other["study_orthanc_id"]}


# The fields of an audit row written for people (the others are as written).
PEOPLES_FIELDS = (
    "at_text",
    "event_name",
    "who",
    "patient_id",
    "patient_name",
    "study",
    "subject_text",
    "detail_text",
)


def local_clock(at, twelve_hours):
    """The entry's time of day in the site's TIMEZONE (America/Caracas)."""
    local = at.replace(tzinfo=zoneinfo.ZoneInfo("UTC")).astimezone(
        zoneinfo.ZoneInfo("America/Caracas")
    )
    hour = (local.hour % 12 or 12) if twelve_hours else local.hour
    return f"{hour}:{local.minute:02d}"


def test_who_opened_this_patients_studies_in_spanish(app, world):
    rows = world["admin"].get("/staff/api/audit?lang=es&patient=nunez").json["events"]
    opened = [r for r in rows if r["event"] == "study_access"]
    assert {r["who"] for r in opened} == {
        "Paciente P-77 (NÚÑEZ, JOSÉ)",
        "Enlace compartido por el paciente P-77 (NÚÑEZ, JOSÉ)",
        "Médico o institución dra-gomez",
    }
    for r in opened:
        assert r["patient_id"] == "P-77" and r["patient_name"] == "NÚÑEZ, JOSÉ"
        assert "1 dic 2026" in r["study"] and "TC DE CRÁNEO" in r["study"]
        assert r["event_name"] == "Estudio abierto"
    # The other patient's study, opened by the same physician, is not about Núñez.
    assert world["other"] not in str(rows) and "P-88" not in str(rows)
    events = {r["event"] for r in rows}
    assert {"study_access", "share_created", "password_issued"} <= events
    for r in rows:
        # What people read is all Spanish; the entry as written (actor,
        # subject, detail: terse English for scripts) is beside it.
        shown = " ".join(str(v) for k, v in r.items() if k in PEOPLES_FIELDS)
        for word in ENGLISH:
            assert word not in shown, (word, r)
        entry = AuditEvent.get_by_id(r["id"])
        assert local_clock(entry.at, twelve_hours=False) in r["at_text"]
    # By ID too, with the API's own filters combined.
    by_id = world["admin"].get("/staff/api/audit?lang=es&patient=P-77&event=study_access").json
    assert [r["id"] for r in by_id["events"]] == [r["id"] for r in opened]


def test_the_same_in_english_and_the_csv(app, world):
    admin = world["admin"]
    rows = admin.get("/staff/api/audit?lang=en&patient=NÚÑEZ&event=study_access").json["events"]
    assert {r["who"] for r in rows} == {
        "Patient P-77 (NÚÑEZ, JOSÉ)",
        "Link shared by the patient P-77 (NÚÑEZ, JOSÉ)",
        "Physician or institution dra-gomez",
    }
    assert all("Dec 1, 2026" in r["study"] for r in rows)
    entry = AuditEvent.get_by_id(rows[0]["id"])
    assert local_clock(entry.at, twelve_hours=True) in rows[0]["at_text"]
    reissue = admin.get("/staff/api/audit?lang=es&event=password_issued&patient=P-77").json[
        "events"
    ]
    assert (
        reissue[0]["detail_text"] == "Reemitida por el personal"
        and reissue[0]["who"] == "Personal admin"
    )
    text = admin.get(
        "/staff/api/audit?lang=es&patient=nunez&event=study_access&format=csv&readable=1"
    )
    assert text.headers["Content-Type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(text.get_data(as_text=True))))
    assert table[0] == [
        "#",
        "Cuándo",
        "Evento",
        "Quién",
        "ID del paciente",
        "Nombre del paciente",
        "Estudio",
        "Sobre qué",
        "Desde",
        "Detalle",
    ]
    assert len(table) == 4 and all(
        row[4] == "P-77" and "TC DE CRÁNEO" in row[6] for row in table[1:]
    )
    assert {row[3] for row in table[1:]} >= {"Médico o institución dra-gomez"}
    assert admin.get("/staff/api/audit?since=yesterday&lang=es").status_code == 400


def test_the_page_offers_the_patient_search_and_local_times(app, world):
    page = world["admin"].get("/staff/audit?lang=es").get_data(as_text=True)
    assert 'id="f-patient"' in page and "quién abrió sus estudios" in page
    assert "UTC" not in page
    rad = app.test_client()
    from authsvc import passwords
    from authsvc.models import StaffUser

    StaffUser.create(
        username="rad",
        role="radiologist",
        password_hash=passwords.hash_password(ADMIN_PW, generated=False),
    )
    rad.post("/api/login", json={"username": "rad", "password": ADMIN_PW})
    assert rad.get("/staff/api/audit").status_code == 403


def test_a_study_held_back_before_it_was_recorded_is_named_in_the_pages_language(app, world):
    """An identity conflict's entry names a study the service never recorded
    (it was held back): the page says so in its own language, not
    "study <Orthanc ID>" in English."""
    from authsvc import audit

    held = "12345678-9abcdef0-12345678-9abcdef0-12345678"
    audit.record(
        "identity_conflict",
        actor="ingest",
        subject=f"study {held}",
        detail="PatientID P-77: birth_date",
    )
    for lang, words in (("es", "Estudio no registrado"), ("en", "Study not recorded")):
        rows = world["admin"].get(f"/staff/api/audit?lang={lang}&event=identity_conflict").json
        (row,) = [r for r in rows["events"] if held in r["subject"]]
        assert row["subject_text"] == f"{words} {held}", row
        assert row["subject"] == f"study {held}"  # as written
