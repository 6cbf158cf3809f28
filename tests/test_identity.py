"""Who a study belongs to, in-process (no Orthanc): PatientIDs recorded as
sent, never merged; studies whose identity conflicts with a login (characters
Orthanc dropped, another birth date or name) attached to no one until staff
resolve them; each study's own patient name."""

import json
import time

import pytest

from authsvc import ingest, passwords
from authsvc.cli import ensure_admin
from authsvc.migrations import migrate
from authsvc.models import AuditEvent, Patient, RuleMatch, SchemaVersion, StaffUser, Study
from tests.helpers import fake_study, write_rules

# Imported where used, so that each test of this file fails on its own
# assertion (not all at import) on code without the conflicts module.


def conflicts_module():
    from authsvc import conflicts

    return conflicts


def conflict_rows():
    from authsvc.models import IdentityConflict

    return IdentityConflict


STAFF_PASSWORD = "a staff password, long enough"
INST = "0008,0080"


@pytest.fixture
def staff(app):
    ensure_admin("admin", STAFF_PASSWORD)
    StaffUser.create(
        username="rad",
        role="radiologist",
        password_hash=passwords.hash_password(STAFF_PASSWORD, generated=False),
    )


def logged_in(app, **body):
    c = app.test_client()
    r = c.post("/api/login", json=body)
    assert r.status_code == 200, r.json
    return c


def as_admin(app):
    return logged_in(app, username="admin", password=STAFF_PASSWORD)


def record(data):
    return ingest.store_study(data["study_orthanc_id"], data)


def own_studies(client):
    return {s["orthanc_id"] for s in client.get("/api/studies").json["studies"]}


def stripped(patient_id, study, raw, charset="ISO_IR 999", **kw):
    """A study whose PatientID Orthanc recorded as `patient_id` while the
    file's bytes are `raw` in `charset`."""
    data = fake_study(patient_id, study, **kw)
    for entry in data["patient_id_raw"]:
        entry.update(charset=charset, raw=raw.hex())
    return data


# -- 1. PatientIDs as sent ----------------------------------------------------


def test_patient_ids_differing_in_inner_spaces_are_two_logins(app):
    a, b = (
        fake_study("SP 77", "1", name="ONE^PERSON"),
        fake_study("SP  77", "2", name="OTHER^PERSON"),
    )
    pw_a, pw_b = record(a), record(b)
    assert pw_a and pw_b, "each PatientID gets its own login"
    assert {p.patient_id for p in Patient.select()} == {"SP 77", "SP  77"}
    ca = logged_in(app, patient_id="SP 77", password=pw_a)
    cb = logged_in(app, patient_id="SP  77", password=pw_b)
    assert own_studies(ca) == {a["study_orthanc_id"]}
    assert own_studies(cb) == {b["study_orthanc_id"]}
    # The other's password does not open a login by typing the ID differently.
    assert (
        app.test_client()
        .post("/api/login", json={"patient_id": "SP 77", "password": pw_b})
        .status_code
        == 401
    )


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("  HC 0042 ", "HC 0042"),
        ("HC 0042\x00", "HC 0042"),
        ("A  B", "A  B"),
        ("\x00 X \x00", "X"),
    ],
)
def test_only_dicom_padding_is_removed(raw, expected):
    assert ingest.usable_patient_id(raw) == expected


def test_credentials_route_names_the_exact_patient(app, staff):
    record(fake_study("SP 77", "1"))
    record(fake_study("SP  77", "2"))
    admin = as_admin(app)
    r = admin.post("/api/patients/SP  77/credentials", json={})
    assert r.status_code == 200 and r.json["patient_id"] == "SP  77"
    assert admin.post("/api/patients/SP   77/credentials", json={}).status_code == 404


# -- 2. what Orthanc could not decode ---------------------------------------------


@pytest.mark.parametrize(
    "raw,charset,recorded,code",
    [
        (b"COLLIDE\xe9", "ISO_IR 999", "COLLIDE", "charset_unknown"),  # unknown term, non-ASCII
        (b"BADU\xe9 ", "ISO_IR 192", "BADU", "patient_id_undecodable"),  # not UTF-8
        (
            b"MIS\xe9",
            "ISO IR 100",
            "MIS",
            "patient_id_differs",
        ),  # pydicom fixes the term, Orthanc not
        (b"\x1b$B;3ED", "\\ISO 2022 IR 87", "", "patient_id_differs"),  # Orthanc decoded nothing
    ],
)
def test_patient_id_bytes_orthanc_could_not_record_are_a_problem(raw, charset, recorded, code):
    problem = conflicts_module().patient_id_problem(raw, charset, recorded)
    assert problem is not None and problem[0] == code


@pytest.mark.parametrize(
    "raw,charset,recorded",
    [
        (b"LAT\xe9", "ISO_IR 100", "LATé"),
        (b"\xc3\x91U\xc3\x91EZ-1 ", "ISO_IR 192", "ÑUÑEZ-1"),
        (b"PLAIN-1 ", "ISO_IR 999", "PLAIN-1"),  # unknown term but only ASCII
        (b"NOCS\xe9 ", "", "NOCSé"),  # no term: Latin-1, like Orthanc's default
        (b" LEAD 1 ", "ISO_IR 192", " LEAD 1"),  # padding on both sides
        (b"\x1b$B;3ED\x1b(B", "\\ISO 2022 IR 87", "山田"),
    ],
)
def test_patient_id_bytes_orthanc_recorded_faithfully_are_fine(raw, charset, recorded):
    assert conflicts_module().patient_id_problem(raw, charset, recorded) is None


def test_stripped_patient_id_is_attached_to_no_login(app, staff):
    mine = fake_study("COLLIDE", "1", name="REAL^OWNER")
    pw = record(mine)
    # Another person's COLLIDE\xe9 in a character set Orthanc does not know:
    # Orthanc recorded COLLIDE, under the same Orthanc patient.
    stranger = stripped("COLLIDE", "2", b"COLLIDE\xe9", name="REAL^OWNER")
    assert record(stranger) is None
    owner = logged_in(app, patient_id="COLLIDE", password=pw)
    assert own_studies(owner) == {mine["study_orthanc_id"]}
    assert not Study.select().where(Study.orthanc_id == stranger["study_orthanc_id"]).exists()
    assert conflicts_module().orthanc_patient_in_conflict(mine["patient_orthanc_id"])
    assert not conflicts_module().orthanc_patient_in_conflict(
        "000000ba-00000000-00000000-00000000-00000000"
    )
    problems = as_admin(app).get("/api/ingest/problems").json["problems"]
    problem = next(p for p in problems if p["orthanc_id"] == stranger["study_orthanc_id"])
    assert problem["conflict"]["code"] == "charset_unknown"
    assert "COLLIDE\\xe9" in problem["error"] and "ISO_IR 999" in problem["error"]
    assert problem["conflict"]["login"] == "COLLIDE"
    assert problem["conflict"]["patient_orthanc_id"] == mine["patient_orthanc_id"]


def test_conflict_without_any_login_yet(app, staff):
    stranger = stripped("ALONE", "1", b"ALONE\xe9")
    assert record(stranger) is None
    assert Patient.select().count() == 0
    # The real ALONE arrives later: a login of its own, the stranger's study
    # still attached to no one.
    real = fake_study("ALONE", "2")
    pw = record(real)
    assert own_studies(logged_in(app, patient_id="ALONE", password=pw)) == {
        real["study_orthanc_id"]
    }


def test_a_conflicting_restable_study_loses_its_login(app):
    data = fake_study("LATE", "1")
    pw = record(data)
    late = fake_study("LATE", "1", series=2)
    late["patient_id_raw"][1].update(charset="ISO_IR 999", raw=b"LATE\xe9".hex())
    record(late)
    assert own_studies(logged_in(app, patient_id="LATE", password=pw)) == set()


# -- 3. another birth date or name ---------------------------------------------------


def test_other_birth_date_is_a_conflict(app):
    pw = record(fake_study("BD-1", "1"))
    other = fake_study("BD-1", "2")
    other["patient"]["PatientBirthDate"] = "19990202"
    record(other)
    assert own_studies(logged_in(app, patient_id="BD-1", password=pw)) == {
        fake_study("BD-1", "1")["study_orthanc_id"]
    }
    row = conflict_rows().get(conflict_rows().study_orthanc_id == other["study_orthanc_id"])
    assert row.state == "open" and json.loads(row.problems)[0]["code"] == "birth_date"


@pytest.mark.parametrize(
    "first,later,conflict",
    [
        ("NÚÑEZ^JOSÉ", "nunez^jose^^^", False),
        ("NÚÑEZ^JOSÉ", "  Nuñez ^ José ", False),
        ("DOE^JOHN", "", False),
        ("DOE^JOHN", "DOE^JANE", True),
        ("DOE^JOHN=ドウ^ジョン", "DOE^JOHN", False),
    ],
)
def test_other_name_is_a_conflict_after_folding(app, first, later, conflict):
    record(fake_study("NM-1", "1", name=first))
    record(fake_study("NM-1", "2", name=later))
    assert conflict_rows().select().exists() is conflict


def test_missing_birth_dates_are_no_conflict(app):
    first = fake_study("BD-2", "1")
    first["patient"]["PatientBirthDate"] = ""
    record(first)
    record(fake_study("BD-2", "2"))
    assert not conflict_rows().select().exists()


def test_rule_logins_never_see_a_conflicting_study(app, staff):
    record(fake_study("RL-1", "1", values={INST: ["HOSPITAL CENTRAL"]}))
    other = fake_study("RL-1", "2", values={INST: ["HOSPITAL CENTRAL"]})
    other["patient"]["PatientBirthDate"] = "19990202"
    pw = write_rules(
        app,
        [{"login": "central", "rules": [{"tag": "InstitutionName", "value": "HOSPITAL CENTRAL"}]}],
        ["central"],
    )["central"]
    rule = logged_in(app, login="central", password=pw)
    record(other)
    first = fake_study("RL-1", "1")["study_orthanc_id"]
    assert own_studies(rule) == {first}
    # A rules change recomputes every match: still not the conflicting study.
    write_rules(
        app, [{"login": "central", "rules": [{"tag": "InstitutionName", "value": "HOSPITAL*"}]}]
    )
    assert own_studies(rule) == {first}
    assert {m.study.orthanc_id for m in RuleMatch.select()} == {first}
    # Once resolved, it is matched like any study.
    as_admin(app).post(
        f"/api/ingest/conflicts/{other['study_orthanc_id']}/resolve", json={"action": "attach"}
    )
    assert own_studies(rule) == {first, other["study_orthanc_id"]}


# -- resolving ---------------------------------------------------------------------------


@pytest.fixture
def conflict(app, staff):
    mine = fake_study("COLLIDE", "1", name="REAL^OWNER")
    pw = record(mine)
    stranger = stripped("COLLIDE", "2", b"COLLIDE\xe9", name="STRANGER^ONE")
    record(stranger)
    return {
        "pw": pw,
        "mine": mine["study_orthanc_id"],
        "stranger": stranger["study_orthanc_id"],
        "orthanc_patient": mine["patient_orthanc_id"],
    }


def resolve(client, study, **body):
    return client.post(f"/api/ingest/conflicts/{study}/resolve", json=body)


def test_attach_to_the_existing_login(app, conflict):
    r = resolve(as_admin(app), conflict["stranger"], action="attach")
    assert r.status_code == 200, r.json
    assert r.json["patient_id"] == "COLLIDE" and r.json["password"] is None
    owner = logged_in(app, patient_id="COLLIDE", password=conflict["pw"])
    assert own_studies(owner) == {conflict["mine"], conflict["stranger"]}
    assert not conflicts_module().orthanc_patient_in_conflict(conflict["orthanc_patient"])
    event = AuditEvent.get(AuditEvent.event == "identity_resolved")
    assert event.actor == "staff admin" and "COLLIDE" in event.detail
    assert as_admin(app).get("/api/ingest/problems").json["problems"] == []
    assert resolve(as_admin(app), conflict["stranger"], action="attach").status_code == 404


def test_separate_login(app, conflict):
    r = resolve(as_admin(app), conflict["stranger"], action="separate")
    assert r.status_code == 200, r.json
    login_id, password = r.json["patient_id"], r.json["password"]
    assert login_id == "COLLIDE-2"
    separate = logged_in(app, patient_id=login_id, password=password)
    assert own_studies(separate) == {conflict["stranger"]}
    owner = logged_in(app, patient_id="COLLIDE", password=conflict["pw"])
    assert own_studies(owner) == {conflict["mine"]}
    # Orthanc still keeps both people's studies under one Orthanc patient:
    # its patient-level routes stay closed to both logins.
    assert conflicts_module().orthanc_patient_in_conflict(conflict["orthanc_patient"])
    assert Patient.get(Patient.patient_id == login_id).orthanc_id != conflict["orthanc_patient"]
    names = [e.event for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert "identity_resolved" in names and names.count("password_issued") >= 2
    held = AuditEvent.get(AuditEvent.event == "identity_conflict")
    assert held.detail == "PatientID COLLIDE: charset_unknown, name"
    assert "STRANGER" not in held.detail
    # The stranger's next study with the same stripped ID is a conflict again;
    # staff may attach it to the separate login.
    again = stripped("COLLIDE", "3", b"COLLIDE\xe9", name="STRANGER^ONE")
    record(again)
    r = resolve(as_admin(app), again["study_orthanc_id"], action="attach", patient_id=login_id)
    assert r.status_code == 200, r.json
    assert own_studies(separate) == {conflict["stranger"], again["study_orthanc_id"]}


def test_a_dicom_patient_id_equal_to_a_separate_login_is_a_conflict(app, conflict):
    login_id = resolve(as_admin(app), conflict["stranger"], action="separate").json["patient_id"]
    intruder = fake_study(login_id, "9")
    record(intruder)
    row = conflict_rows().get(conflict_rows().study_orthanc_id == intruder["study_orthanc_id"])
    assert json.loads(row.problems)[0]["code"] == "separate_login_id"


def test_separate_login_ids_are_unique(app, conflict):
    record(fake_study("COLLIDE-2", "7"))  # a real patient already holds COLLIDE-2
    assert (
        resolve(as_admin(app), conflict["stranger"], action="separate").json["patient_id"]
        == "COLLIDE-3"
    )


def test_only_admins_resolve_and_attach_only_to_related_logins(app, conflict):
    record(fake_study("SOMEONE", "5"))
    rad = logged_in(app, username="rad", password=STAFF_PASSWORD)
    assert resolve(rad, conflict["stranger"], action="attach").status_code == 403
    patient = logged_in(app, patient_id="COLLIDE", password=conflict["pw"])
    assert resolve(patient, conflict["stranger"], action="attach").status_code == 403
    admin = as_admin(app)
    assert (
        resolve(admin, conflict["stranger"], action="attach", patient_id="SOMEONE").status_code
        == 400
    )
    assert resolve(admin, conflict["stranger"], action="merge").status_code == 400
    assert conflict_rows().get().state == "open"


def test_staff_dashboard_lists_conflicts_in_their_language(app, conflict):
    for lang, words in (("es", "juego de caracteres"), ("en", "character set")):
        c = app.test_client()
        c.environ_base["HTTP_ACCEPT_LANGUAGE"] = lang
        c.post("/api/login", json={"username": "rad", "password": STAFF_PASSWORD})
        rows = c.get("/staff/api/conflicts").json["conflicts"]
        assert [r["orthanc_id"] for r in rows] == [conflict["stranger"]]
        assert words in rows[0]["reason_text"] and "ISO_IR 999" in rows[0]["reason_text"]
        assert "character set" in rows[0]["reason"]  # the service's own words
        assert rows[0]["may_resolve"] is False and rows[0]["login"] == "COLLIDE"
        assert rows[0]["patient_name_text"] == "STRANGER, ONE"
        page = c.get("/staff").get_data(as_text=True)
        assert 'id="conflicts"' in page
    c = app.test_client()
    c.post("/api/login", json={"username": "admin", "password": STAFF_PASSWORD})
    row = c.get("/staff/api/conflicts").json["conflicts"][0]
    assert row["may_resolve"] is True
    assert row["attach_to"] == ["COLLIDE"]
    assert [a["patient_id"] for a in row["attach_choices"]] == ["COLLIDE"]
    assert row["separate_login_id"] == "COLLIDE-2"
    r = c.post(row["resolve_url"], json={"action": "separate"})
    assert r.status_code == 200 and r.json["patient_id"] == "COLLIDE-2"
    assert c.get("/staff/api/conflicts").json["conflicts"] == []


# -- 4. each study's own patient name -------------------------------------------------------


def test_each_study_shows_its_own_patient_name(app, staff):
    names = [f"PERSON^N{n}" for n in range(7)]
    made = [fake_study("SEVEN", str(n), name=names[0]) for n in range(7)]
    for data, name in zip(made, names, strict=True):
        data["patient"]["PatientName"] = name
    # Only the first is the login's name; the others would be conflicts:
    # record them as staff attached them (what the login of 7 names had).
    record(made[0])
    for data in made[1:]:
        record(data)
        resolve(as_admin(app), data["study_orthanc_id"], action="attach")
    rows = as_admin(app).get("/api/studies").json["studies"]
    assert sorted(r["patient_name"] for r in rows) == names
    dashboard = as_admin(app).get("/staff/api/studies").json["studies"]
    assert dashboard == rows  # one list, whichever URL
    assert sorted(r["patient_name_text"] for r in dashboard) == sorted(
        f"PERSON, N{n}" for n in range(7)
    )


def test_viewer_shows_each_study_s_name(app, staff):
    first = fake_study("TWO-N", "1", name="FIRST^NAME")
    pw = record(first)
    second = fake_study("TWO-N", "2", name="first^name^^")  # the same name, spelt otherwise
    record(second)
    assert pw
    client = as_admin(app)
    shown = [
        client.get(f"/portal/studies/{d['study_orthanc_id']}")
        .get_data(as_text=True)
        .split('id="viewer-patient">')[1]
        .split("</span>")[0]
        for d in (first, second)
    ]
    assert "FIRST, NAME" in shown[0] and "first, name" in shown[1]


def test_migration_0005_adds_each_study_s_name_to_an_older_database(app):
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run_operations

    from authsvc.db import database

    record(fake_study("OLD-1", "1", name="OLD^NAME"))
    db = database.obj
    run_operations(SchemaMigrator.from_database(db).drop_column("study", "patient_name"))
    SchemaVersion.delete().where(SchemaVersion.version == 5).execute()
    assert migrate() == [5]
    assert Study.get().patient_name == "OLD^NAME"  # filled from the login's name
    assert migrate() == []


def test_migration_0006_adds_the_conflicts_table(app):
    from authsvc.db import database

    db = database.obj
    db.drop_tables([conflict_rows()])
    SchemaVersion.delete().where(SchemaVersion.version == 6).execute()
    assert migrate() == [6]
    assert not conflict_rows().select().exists()
    assert migrate() == []


def test_resolving_survives_a_write_by_another_worker_meanwhile(app, conflict, monkeypatch):
    """SQLite: a transaction that reads first and writes later fails at
    once ("database is locked", a 503) when another connection wrote in
    between; resolving takes the write lock first and waits instead. The
    other worker's write comes from a thread with its own connection, right
    after resolve's first read."""
    import threading

    from authsvc import conflicts as conflicts_mod
    from authsvc.db import database, is_sqlite
    from authsvc.models import IdentityConflict, set_value

    if not is_sqlite(app.config["DATABASE_URL"]):
        pytest.skip("PostgreSQL's writers wait for each other's rows: no such failure")
    real_get = IdentityConflict.get_or_none
    done = []

    def other_worker():
        with database.connection_context():
            set_value("other-worker", "wrote")
        done.append(True)

    def get_then_someone_writes(*args, **kwargs):
        row = real_get(*args, **kwargs)
        writer = threading.Thread(target=other_worker)
        writer.start()
        writer.join(1.0)  # with the write lock held by resolve, it waits for it
        return row

    monkeypatch.setattr(conflicts_mod.IdentityConflict, "get_or_none", get_then_someone_writes)
    r = resolve(as_admin(app), conflict["stranger"], action="attach")
    assert r.status_code == 200, r.json
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.05)
    assert done, "the other worker's write never went through"
