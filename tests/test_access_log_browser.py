"""A patient's own access log, in a real browser on a small phone
(360x640), in Spanish and in English. Patient A's study is opened through
the real stack (nginx's check, the service's decision, the audit) by A's
shared link, by a physician's rule login and by staff; patient B's study,
which the same physician may see, is opened by the physician and by B's own
link. A's page lists A's openings, saying who in A's terms (which link,
which physician login, "staff" without the user name), and never B's; no
other kind of login has the page."""

import uuid

import pytest
from selenium.webdriver.common.by import By

from authsvc.cli import set_rule_password
from tests import chromium
from tests.chromium import wait
from tests.dicom_samples import SeriesSpec, StudySpec, lookup, send_recorded
from tests.helpers import Browser, add_rule_login, wait_for
from tests.phone import small_phone

TITLE = {"es": "Quién ha abierto sus estudios", "en": "Who has opened your studies"}
SHARE = {"es": "Su enlace compartido n.º {n}", "en": "Your shared link #{n}"}
STAFF = {"es": "Personal de ", "en": "Staff of "}


@pytest.fixture(scope="module")
def opened(stack, orthanc, admin, tmp_path_factory):
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    suffix = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("access-dicom")
    doctor = f"PAZ^ELENA^{suffix.upper()}"
    specs = {
        "A": StudySpec(
            f"AL-{suffix}",
            "ROJAS^INES",
            description=f"RODILLA-{suffix}",
            tags={"ReferringPhysicianName": doctor},
            series=[SeriesSpec("CT", 1)],
        ),
        "B": StudySpec(
            f"BL-{suffix}",
            "MORA^LUIS",
            description=f"HOMBRO-{suffix}",
            tags={"ReferringPhysicianName": doctor},
            series=[SeriesSpec("CT", 1)],
        ),
    }
    found = {}
    for key, spec in specs.items():
        written, study, password = send_recorded(stack, orthanc, admin, spec, tmp / key)
        patient = Browser(stack.public_url)
        assert patient.login(patient_id=spec.patient_id, password=password).status_code == 200
        share = patient.post("/api/shares", json={"study": study, "days": 2}).json()
        found[key] = {
            "pid": spec.patient_id,
            "password": password,
            "study": study,
            "description": spec.description,
            "share": share,
            "instance": lookup(orthanc, written.sop_uids[0]),
        }
    login = f"dra-paz-{suffix}"
    rules_path = add_rule_login(
        stack,
        {
            "login": login,
            "description": f"Dra. Elena Paz {suffix}",
            "rules": [{"tag": "ReferringPhysicianName", "value": doctor}],
        },
    )
    password = set_rule_password(
        str(stack.data_dir / "rule-passwords.json"), str(rules_path), login
    )
    physician = Browser(stack.public_url)
    wait_for(
        lambda: physician.login(login=login, password=password).status_code == 200,
        30,
        what="the rule login",
    )

    def opens(who, key):
        path = f"/orthanc/instances/{found[key]['instance']}/preview"
        wait_for(lambda: who.get(path).status_code == 200, 30, what=f"{key}'s image")

    holders = {}
    for key in found:
        holders[key] = Browser(stack.public_url)
        secret = found[key]["share"]["url"].split("#share=")[1]
        assert holders[key].login(share=secret).status_code == 200
        opens(holders[key], key)
        opens(physician, key)
    # Staff open a study from the dashboard's link to the viewer.
    assert admin.get(f"/portal/studies/{found['A']['study']}").status_code == 200
    return dict(found, base=stack.public_url, login=login, physician=physician, holders=holders)


@pytest.mark.stack
@pytest.mark.browser
@pytest.mark.parametrize("language", ["es", "en"])
def test_the_patient_sees_who_opened_their_study(opened, language):
    a, b = opened["A"], opened["B"]
    phone = small_phone(language)
    try:
        phone.get(f"{opened['base']}/#id={a['pid']}&pw={a['password']}")
        phone.find_element(By.ID, "login-button").click()
        wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")
        link = phone.find_element(By.ID, "access-log-link")
        assert link.text == TITLE[language]
        link.click()
        wait(phone, lambda d: d.find_elements(By.ID, "access-log"), what="the access log")
        assert phone.execute_script("return [innerWidth, innerHeight]") == [360, 640]
        assert phone.find_element(By.TAG_NAME, "h1").text == TITLE[language]
        rows = phone.find_elements(By.CSS_SELECTOR, "#access-log li")
        seen = {
            (
                r.get_attribute("class").split()[-1],
                r.find_element(By.CLASS_NAME, "who").text,
                r.find_element(By.CLASS_NAME, "what").text.split(" · ")[0],
            )
            for r in rows
        }
        share_n = a["share"]["id"]
        assert any(
            kind == "share"
            and who.startswith(SHARE[language].format(n=share_n))
            and what == a["description"]
            for kind, who, what in seen
        ), seen
        assert (
            "rule",
            f"Dra. Elena Paz {opened['login'].split('-')[-1]} ({opened['login']})",
            a["description"],
        ) in seen, seen
        staff = [who for kind, who, _ in seen if kind == "staff"]
        assert staff and all(w.startswith(STAFF[language]) and "admin" not in w for w in staff), (
            seen
        )
        # Never an entry of B's study, nor B's link.
        page = phone.find_element(By.ID, "main").text
        assert b["description"] not in page and f"#{b['share']['id']}" not in page
        # Every row has a time, and the rows fit the phone's width.
        assert all(r.find_element(By.CLASS_NAME, "when").text for r in rows)
        assert phone.execute_script("return document.documentElement.scrollWidth") <= 360
    finally:
        phone.quit()


@pytest.mark.stack
@pytest.mark.browser
def test_only_the_patient_has_the_page(opened):
    assert Browser(opened["base"]).get("/portal/access").status_code == 302
    assert opened["physician"].get("/portal/access").status_code == 404
    assert opened["holders"]["A"].get("/portal/access").status_code == 404
    b = Browser(opened["base"])
    assert (
        b.login(patient_id=opened["B"]["pid"], password=opened["B"]["password"]).status_code == 200
    )
    text = b.get("/portal/access").text
    assert opened["B"]["description"] in text and opened["A"]["description"] not in text


def test_the_log_is_read_by_its_index(app):
    """In-process (SQLite, or PostgreSQL's planner): the page's query finds a study's openings by the
    (event, subject) index, not by reading the whole audit log."""
    from peewee import SqliteDatabase

    from authsvc import ingest
    from authsvc.access_log import entries
    from authsvc.db import database
    from authsvc.models import AuditEvent, Patient
    from tests.helpers import fake_study

    data = fake_study("IX-1", "1")
    ingest.store_study(data["study_orthanc_id"], data)
    patient = Patient.get(Patient.patient_id == "IX-1")
    query = AuditEvent.select().where(
        (AuditEvent.event == "study_access") & AuditEvent.subject.in_([data["study_orthanc_id"]])
    )
    sql, params = query.sql()
    explain = "EXPLAIN QUERY PLAN " if isinstance(database.obj, SqliteDatabase) else "EXPLAIN "
    if not isinstance(database.obj, SqliteDatabase):
        database.execute_sql("SET enable_seqscan = off")  # a tiny table: ask whether it can
    plan = " ".join(str(row) for row in database.execute_sql(explain + sql, params))
    assert "auditevent_event_subject" in plan, plan
    assert entries(patient) == []
