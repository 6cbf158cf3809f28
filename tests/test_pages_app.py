"""The people's side in-process (Flask's test client, a fresh database: SQLite,
or PostgreSQL under `make test-postgres`; no Orthanc): the encrypted display
copy of new passwords, the dashboard's JSON, printing and reissuing, staff
accounts, who may open which page, headers, CSRF and languages; the portal of
rule logins and of shares' holders (exactly their studies, never another of
the same patient), the patient's shares, and the staff's pages of shares and
rules. (The 0002 migration's test is in tests/test_migrations.py; the site
and its world are in tests/pages_world.py.)"""

import json
import logging

import pytest

from authsvc import display, ingest
from authsvc.cli import ensure_admin
from authsvc.db import database
from authsvc.models import Patient, StaffUser
from tests.helpers import ON_POSTGRES, fake_study, write_rules
from tests.pages_world import (  # noqa: F401 (fixtures)
    DISPLAY_KEY,
    STAFF_PAGES,
    STAFF_PASSWORD,
    client_as,
    client_of,
    make_app,
    rule_and_share_logins,
    share_secret,
    site,
    staff_client,
    world,
)


def dashboard_row(client, study):
    rows = client.get("/staff/api/studies").json["studies"]
    return next(r for r in rows if r["orthanc_id"] == study)


# -- the display copy -------------------------------------------------------


@pytest.mark.skipif(ON_POSTGRES, reason="reads the SQLite file's bytes on disk")
def test_new_login_keeps_only_an_encrypted_copy(site, world, tmp_path):
    patient = Patient.get(Patient.patient_id == "P-1")
    assert patient.display_password and world["pw_a"] not in patient.display_password
    assert display.pending_password(patient) == world["pw_a"]
    database.close()  # flush: the whole database on disk holds no plaintext
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("db.sqlite3*"))
    for form in (world["pw_a"], world["pw_a"].replace("-", "")):
        assert form.encode() not in raw


def test_copy_is_bound_to_its_patient_and_password():
    import datetime

    box = display.DisplayBox(DISPLAY_KEY)
    when = datetime.datetime(2026, 1, 1, 12, 0, 0, 5)
    token = box.seal("P-1", "abcd-efgh-jkmn", when)
    assert box.open(token, "P-1", when) == "abcd-efgh-jkmn"
    assert box.open(token, "P-2", when) is None  # moved to another patient's row
    assert box.open(token, "P-1", when + datetime.timedelta(seconds=1)) is None  # old password
    assert box.open(token[:-2] + "xx", "P-1", when) is None
    assert display.DisplayBox("e" * 43).open(token, "P-1", when) is None  # another key
    # Whatever the key's decoding raises: a short key is refused, never used.
    with pytest.raises(Exception):  # noqa: B017
        display.DisplayBox("short")


def test_without_display_key_nothing_is_kept(tmp_path, database_url):
    app = make_app(tmp_path, database_url, display_key=None)
    try:
        data = fake_study("P-9", "9")
        password = ingest.store_study(data["study_orthanc_id"], data)
        assert password and Patient.get(Patient.patient_id == "P-9").display_password is None
        ensure_admin("admin", STAFF_PASSWORD)
        c = staff_client(app)
        row = dashboard_row(c, data["study_orthanc_id"])
        assert row["login"] == "issued" and row["password"] is None
        # A reissue still works: its answer is the only place the password is shown.
        r = c.post("/staff/api/patients/P-9/reissue", json={})
        assert r.status_code == 200 and r.json["kept_for_slip"] is False and r.json["password"]
        assert Patient.get(Patient.patient_id == "P-9").display_password is None
        assert "clave de visualización" in c.get("/staff").get_data(as_text=True)
    finally:
        database.close()


# -- dashboard, printing, reissuing -----------------------------------------


def test_dashboard_shows_pending_password_until_printed(site, world):
    c = staff_client(site)
    row = dashboard_row(c, world["a"])
    assert row["login"] == "pending" and "-".join(row["password"]) == world["pw_a"]
    assert row["patient_name_text"] == "NÚÑEZ, JOSÉ" and row["date_text"] == "1 ene 2026"
    # Printing names the password it printed; a stale name changes nothing.
    r = c.post(
        "/staff/api/patients/P-1/printed",
        json={"password_set_at": "2000-01-01T00:00:00", "language": "en"},
    )
    assert r.status_code == 409
    assert dashboard_row(c, world["a"])["password"]
    r = c.post(
        "/staff/api/patients/P-1/printed",
        json={"password_set_at": row["password_set_at"], "language": "en"},
    )
    assert r.status_code == 200
    row = dashboard_row(c, world["a"])
    assert row["login"] == "printed" and row["password"] is None and row["slip_language"] == "en"
    patient = Patient.get(Patient.patient_id == "P-1")
    assert patient.display_password is None
    # The slip now has no password, and offers a reissue.
    page = c.get("/staff/slips/P-1").get_data(as_text=True)
    assert 'id="slip"' not in page and 'id="reissue"' in page
    # The password itself still works: printing only wiped the copy.
    assert (
        client_as(site)
        .post("/api/login", json={"patient_id": "P-1", "password": world["pw_a"]})
        .status_code
        == 200
    )


def test_reissue_ends_the_old_password_and_its_sessions(site, world):
    c = staff_client(site, "rad")  # radiologists may reissue
    patient = client_as(site, patient_id="P-2", password=world["pw_b"])
    assert patient.get("/portal").status_code == 200
    r = c.post("/staff/api/patients/P-2/reissue", json={})
    assert r.status_code == 200
    row = dashboard_row(c, world["b"])
    new = "-".join(row["password"])
    assert new == r.json["password"]  # the answer and the slip's copy are one password
    assert row["login"] == "pending" and new != world["pw_b"]
    assert patient.get("/portal").status_code == 302  # logged out
    assert (
        client_as(site)
        .post("/api/login", json={"patient_id": "P-2", "password": world["pw_b"]})
        .status_code
        == 401
    )
    assert (
        client_as(site).post("/api/login", json={"patient_id": "P-2", "password": new}).status_code
        == 200
    )
    assert c.post("/staff/api/patients/NOPE/reissue", json={}).status_code == 404


def test_password_issued_through_the_json_api_has_its_slip(site, world):
    """The scripts' reissue keeps the display copy like the dashboard's: the
    new password's slip can be printed (no stale copy of the old one shows)."""
    c = staff_client(site)
    r = c.post("/api/patients/P-1/credentials", json={})
    assert r.status_code == 200
    row = dashboard_row(c, world["a"])
    assert row["login"] == "pending" and "-".join(row["password"]) == r.json["password"]
    assert world["pw_a"] != r.json["password"]
    page = c.get("/staff/slips/P-1").get_data(as_text=True)
    assert 'id="slip"' in page
    for group in r.json["password"].split("-"):
        assert f"<span>{group}</span>" in page


def test_slip_page(site, world):
    c = staff_client(site)
    page = c.get(f"/staff/slips/P-1?study={world['a']}&slip_lang=en&layout=thermal").get_data(
        as_text=True
    )
    assert 'class="slip layout-thermal" id="slip" lang="en"' in page
    assert "slip-thermal.css" in page and "<svg" in page and "<?xml" not in page
    for group in world["pw_a"].split("-"):
        assert f"<span>{group}</span>" in page
    assert "Patient ID" in page and "https://pacs.example.org" in page
    assert "Hoja de NÚÑEZ, JOSÉ" in page  # the staff's own language around it
    assert world["pw_a"] not in page  # never whole: not in a URL, not in a data attribute
    page = c.get("/staff/slips/P-1?layout=nonsense").get_data(as_text=True)
    assert "slip-a6.css" in page and 'lang="es"' in page
    assert c.get("/staff/slips/NOPE").status_code == 404


def test_the_slip_says_what_to_do_when_it_is_lost(site, world):
    """The lost-slip text on the slip itself, in the slip's language
    (not the staff's page's): the site's LOST_SLIP_TEXT, else the built-in."""
    c = staff_client(site)  # the staff's page in Spanish
    saved = site.config.get("LOST_SLIP_TEXT")
    site.config["LOST_SLIP_TEXT"] = {"es": "Llame al 0212-555-0101, extensión 23."}
    try:

        def slip(lang):
            return c.get(f"/staff/slips/P-1?study={world['a']}&slip_lang={lang}").get_data(
                as_text=True
            )

        es, en = slip("es"), slip("en")
        assert '<p class="slip-lost" id="slip-lost">Llame al 0212-555-0101, extensión 23.</p>' in es
        assert '<p class="slip-lost" id="slip-lost">Lost your slip? Ask for a new one' in en
        assert "0212-555-0101" not in en
    finally:
        site.config["LOST_SLIP_TEXT"] = saved


def test_qr_url_holds_the_login_in_the_fragment(site):
    from authsvc.slips import qr_url

    with site.test_request_context("/"):
        assert (
            qr_url("P 1/ñ", "abcd-efgh-jkmn")
            == "https://pacs.example.org/#id=P+1%2F%C3%B1&pw=abcd-efgh-jkmn"
        )


def test_search(site, world):
    c = staff_client(site)

    def ids(q):
        return [
            r["patient_id"]
            for r in c.get("/staff/api/studies", query_string={"q": q}).json["studies"]
        ]

    assert ids("nunez") == ["P-1"]
    assert ids("ÁNGELA") == ["P-2"]
    assert ids("P-") == ["P-2", "P-1"]  # newest first
    assert ids("zzz") == []


# -- staff accounts ---------------------------------------------------------


def test_admin_manages_staff_accounts(site, world):
    c = staff_client(site)
    r = c.post(
        "/staff/api/users", json={"username": "maria", "role": "radiologist", "password": ""}
    )
    assert r.status_code == 201 and r.json["password"]
    maria = client_as(site, username="maria", password=r.json["password"])
    assert maria.get("/staff/api/studies").status_code == 200
    assert (
        c.post(
            "/staff/api/users", json={"username": "maria", "role": "admin", "password": "x" * 20}
        ).status_code
        == 409
    )
    assert (
        c.post(
            "/staff/api/users", json={"username": "bad name", "role": "admin", "password": "x" * 20}
        ).status_code
        == 400
    )
    assert (
        c.post(
            "/staff/api/users", json={"username": "ok", "role": "root", "password": "x" * 20}
        ).status_code
        == 400
    )
    r = c.post("/staff/api/users", json={"username": "ok", "role": "admin", "password": "short"})
    assert r.status_code == 400 and "12" in r.json["message"]
    user_id = StaffUser.get(StaffUser.username == "maria").id
    r = c.post(f"/staff/api/users/{user_id}", json={"active": False})
    assert r.status_code == 200 and r.json["active"] is False
    assert maria.get("/staff/api/studies").status_code == 401  # her session ended
    me = StaffUser.get(StaffUser.username == "admin").id
    r = c.post(f"/staff/api/users/{me}", json={"active": False})
    assert r.status_code == 400 and r.json["error"] == "self"
    names = [u["username"] for u in c.get("/staff/api/users").json["users"]]
    assert names == ["admin", "maria", "rad"]


def test_radiologist_may_not_manage_accounts(site, world):
    c = staff_client(site, "rad")
    assert c.get("/staff/api/users").status_code == 403
    assert c.post("/staff/api/users", json={"username": "x", "role": "admin"}).status_code == 403
    r = c.get("/staff/users")
    assert r.status_code == 403 and "Solo los administradores" in r.get_data(as_text=True)
    assert "Cuentas del personal" not in c.get("/staff").get_data(as_text=True)


# -- who may open what --------------------------------------------------------

STAFF_JSON = [
    ("GET", "/staff/api/studies"),
    ("GET", "/staff/api/users"),
    ("GET", "/staff/api/shares"),
    ("POST", "/staff/api/patients/P-1/printed"),
    ("POST", "/staff/api/patients/P-1/reissue"),
    ("POST", "/staff/api/users"),
    ("POST", "/staff/api/users/1"),
]


@pytest.mark.parametrize("who", ["nobody", "patient", "rule", "share"])
def test_staff_side_is_closed_to_others(site, world, who):
    c = client_of(site, world, who)
    for path in STAFF_PAGES:
        r = c.get(path)
        assert r.status_code == 302 and r.headers["Location"].endswith("/staff/login"), path
    for method, path in STAFF_JSON:
        r = c.open(path, method=method, json={})
        assert r.status_code == (401 if who == "nobody" else 403), path
    assert Patient.get(Patient.patient_id == "P-1").display_password  # nothing wiped


def test_patient_sees_only_own_studies(site, world):
    c = client_as(site, patient_id="P-1", password=world["pw_a"])
    page = c.get("/portal").get_data(as_text=True)
    assert world["a"] in page and world["b"] not in page and "PEÑA" not in page
    assert c.get(f"/portal/studies/{world['a']}").status_code == 200
    for path in (
        f"/portal/studies/{world['b']}",
        "/portal/studies/not-an-id",
        "/portal/studies/00000000-00000000-00000000-00000000-00000000",
    ):
        r = c.get(path)
        assert r.status_code == 404 and "PEÑA" not in r.get_data(as_text=True), path
    r = c.get(f"/portal/api/studies/{world['b']}/series")
    assert r.status_code == 404 and r.json["error"] == "no_such_study"


def test_logged_out_pages_send_to_the_login(site, world):
    c = client_as(site)
    assert c.get("/portal").headers["Location"] == "/"
    assert c.get(f"/portal/studies/{world['a']}").headers["Location"] == "/"
    r = c.get(f"/portal/api/studies/{world['a']}/series")
    assert r.status_code == 401 and r.json["message"] == "Su sesión terminó. Entre de nuevo."


def test_viewer_data_when_orthanc_is_down(site, world):
    c = client_as(site, "en", patient_id="P-1", password=world["pw_a"])
    r = c.get(f"/portal/api/studies/{world['a']}/series")
    assert r.status_code == 503 and r.json["error"] == "orthanc_unavailable"
    assert "cannot be read" in r.json["message"]


PAGES = [
    "/",
    "/staff/login",
    "/portal",
    "/staff",
    "/staff/users",
    "/staff/slips/P-1",
    "/staff/shares",
    "/staff/rules",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_is_no_store_and_locked_down(site, world, path):
    others = rule_and_share_logins(site, world)
    for c in (
        client_as(site),
        staff_client(site),
        client_as(site, patient_id="P-1", password=world["pw_a"]),
        client_as(site, **others["rule"]),
        client_as(site, **others["share"]),
    ):
        r = c.get(path)
        assert r.headers["Cache-Control"] == "no-store", path
        assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "<script>" not in r.get_data(as_text=True)  # no inline script anywhere


def test_json_routes_are_no_store(site, world):
    c = staff_client(site)
    assert c.get("/staff/api/studies").headers["Cache-Control"] == "no-store"
    assert c.get("/staff/api/shares").headers["Cache-Control"] == "no-store"
    patient = client_as(site, patient_id="P-1", password=world["pw_a"])
    assert patient.get("/portal/api/shares").headers["Cache-Control"] == "no-store"
    assert c.get(f"/portal/api/studies/{world['b']}/series").headers["Cache-Control"] == "no-store"


# -- CSRF ---------------------------------------------------------------------


def test_json_writes_need_json(site, world):
    c = staff_client(site)
    for path in (
        "/staff/api/patients/P-1/reissue",
        "/staff/api/patients/P-1/printed",
        "/staff/api/users",
    ):
        r = c.post(
            path, data="username=x&role=admin", content_type="application/x-www-form-urlencoded"
        )
        assert r.status_code == 415, path
    assert dashboard_row(c, world["a"])["login"] == "pending"


def test_logout_form_needs_its_token(site, world):
    c = client_as(site, patient_id="P-1", password=world["pw_a"])
    page = c.get("/portal").get_data(as_text=True)
    token = page.split('name="csrf" value="')[1].split('"')[0]
    assert len(token) == 64
    r = c.post("/logout", data={"csrf": "0" * 64})
    assert r.status_code == 400 and "caducó" in r.get_data(as_text=True)
    assert c.get("/api/session").status_code == 200  # still logged in
    r = c.post("/logout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["Location"] == "/?logged_out=1"  # the page says so
    assert c.get("/api/session").status_code == 401
    # Another session's token does not fit this one.
    other = client_as(site, patient_id="P-1", password=world["pw_a"])
    assert other.post("/logout", data={"csrf": token}).status_code == 400


# -- languages ----------------------------------------------------------------


@pytest.mark.parametrize(
    "header,expected",
    [
        ("es-VE,es;q=0.9", "Sus estudios de imagen"),
        ("en-US,en;q=0.9", "Your imaging studies"),
        ("fr-FR", "Sus estudios de imagen"),
        ("", "Sus estudios de imagen"),
        ("fr, en;q=0.5", "Your imaging studies"),
    ],
)
def test_language_from_the_browser(site, header, expected):
    c = client_as(site, header)
    page = c.get("/").get_data(as_text=True)
    assert f"<h1>{expected}</h1>" in page


def test_language_switch_is_remembered(site):
    c = client_as(site, "es")
    r = c.get("/?lang=en")
    assert "<h1>Your imaging studies</h1>" in r.get_data(as_text=True)
    assert "lang=en" in r.headers["Set-Cookie"]
    assert '<html lang="en">' in c.get("/staff/login").get_data(as_text=True)
    assert 'href="/staff/login?lang=es"' in c.get("/staff/login").get_data(as_text=True)
    assert "<h1>Sus estudios de imagen</h1>" in c.get("/?lang=es").get_data(as_text=True)
    assert "<h1>Your imaging studies</h1>" not in c.get("/?lang=xx").get_data(as_text=True)


def test_splash_text_is_configurable_per_language(tmp_path, database_url):
    app = make_app(
        tmp_path,
        database_url,
        SPLASH_TEXT={"en": "Only with this slip."},
        HOSPITAL_NAME="Hospital Vargas",
    )
    try:
        en = client_as(app, "en").get("/").get_data(as_text=True)
        es = client_as(app, "es").get("/").get_data(as_text=True)
        assert "Only with this slip." in en and "Hospital Vargas" in en
        assert "Sin esta contraseña, solo los administradores" in es  # built-in text
    finally:
        database.close()


def test_errors_of_the_pages_are_translated(site, world):
    en = staff_client(site, lang="en")
    es = staff_client(site, lang="es")
    assert (
        en.post("/staff/api/patients/NOPE/reissue", json={}).json["message"]
        == "There is no patient with this ID."
    )
    assert (
        es.post("/staff/api/patients/NOPE/reissue", json={}).json["message"]
        == "No hay ningún paciente con este ID."
    )


# -- logs ---------------------------------------------------------------------


def test_no_password_in_the_service_log(site, world, caplog):
    caplog.set_level(logging.DEBUG)
    c = staff_client(site)
    c.post("/staff/api/patients/P-2/reissue", json={})
    row = dashboard_row(c, world["b"])
    c.post("/staff/api/patients/P-2/printed", json={"password_set_at": row["password_set_at"]})
    text = caplog.text
    assert "reissued" in text and "printed" in text
    for secret in (
        world["pw_a"],
        world["pw_b"],
        "-".join(row["password"]),
        "".join(row["password"]),
    ):
        assert secret not in text


def test_printing_reissuing_and_logout_are_audited(site, world):
    from authsvc.models import AuditEvent

    c = staff_client(site, "rad")
    c.post("/staff/api/patients/P-2/reissue", json={})
    row = dashboard_row(c, world["b"])
    c.post("/staff/api/patients/P-2/printed", json={"password_set_at": row["password_set_at"]})
    token = c.get("/staff").get_data(as_text=True).split('name="csrf" value="')[1].split('"')[0]
    c.post("/logout", data={"csrf": token})
    events = [(e.event, e.actor, e.subject) for e in AuditEvent.select().order_by(AuditEvent.id)]
    assert ("password_issued", "staff rad", "patient P-2") in events
    assert ("password_printed", "staff rad", "patient P-2") in events
    assert events[-1][:2] == ("logout", "staff rad")
    text = json.dumps([list(e.__data__.values()) for e in AuditEvent.select()], default=str)
    assert "-".join(row["password"]) not in text


@pytest.mark.parametrize("setting", [{"TIMEZONE": "Mars/Olympus"}, {"DEFAULT_LANGUAGE": "fr"}])
def test_bad_page_settings_stop_the_start(tmp_path, database_url, setting):
    from authsvc.config import ConfigError

    with pytest.raises(ConfigError):
        make_app(tmp_path, database_url, **setting)


# -- physicians and institutions, shares: the portal of every kind ------------

REF = "0008,0090"


@pytest.fixture
def tagged(site, world):
    """Besides the world's first studies (a: P-1, b: P-2, naming nobody): a
    second study of P-1 and one of P-3 referred by Dra. Ríos, whose rule
    login dra-rios sees exactly those two."""
    r1 = fake_study("P-1", "11", name="NÚÑEZ^JOSÉ", values={REF: ["RÍOS^CARMEN"]})
    r3 = fake_study("P-3", "13", name="MUÑOZ^INÉS", values={REF: ["Rios^Carmen"]})
    r1["tags"]["StudyDescription"] = "RODILLA"
    ingest.store_study(r1["study_orthanc_id"], r1)
    ingest.store_study(r3["study_orthanc_id"], r3)
    pw = write_rules(
        site,
        [
            {
                "login": "dra-rios",
                "description": "Dra. Carmen Ríos",
                "rules": [{"tag": "ReferringPhysicianName", "value": "RIOS^CARMEN"}],
            }
        ],
        ["dra-rios"],
    )["dra-rios"]
    return dict(world, r1=r1["study_orthanc_id"], r3=r3["study_orthanc_id"], rule_pw=pw)


def test_splash_offers_the_physician_login_and_the_share_landing(site):
    es = client_as(site, "es").get("/").get_data(as_text=True)
    assert '<summary id="physician-toggle">¿Es médico o institución?</summary>' in es
    assert 'id="rule-login"' in es and 'data-kind="rule"' in es and 'name="login"' in es
    assert 'id="share-box"' in es and "Abriendo los estudios compartidos" in es  # in the messages
    assert 'data-logged-in=""' in es
    en = client_as(site, "en").get("/").get_data(as_text=True)
    assert "Physician or institution?" in en and "This link does not work" in en


def test_share_landing_asks_first_when_a_session_exists(site, world):
    # Logged in here: the share's link replaces that session, so the page asks.
    c = client_as(site, patient_id="P-1", password=world["pw_a"])
    assert 'data-logged-in="1"' in c.get("/").get_data(as_text=True)


def test_rule_login_sees_exactly_its_studies_in_the_portal(site, tagged):
    c = client_as(site, login="dra-rios", password=tagged["rule_pw"])
    page = c.get("/portal").get_data(as_text=True)
    assert "<h1>Estudios que puede ver</h1>" in page
    assert tagged["r1"] in page and tagged["r3"] in page
    # Not the other study of the same patient (P-1's a), nor anyone else's.
    assert tagged["a"] not in page and tagged["b"] not in page and "PEÑA" not in page
    # Whose study each is: a physician needs to know.
    assert "NÚÑEZ, JOSÉ" in page and "MUÑOZ, INÉS" in page and "P-3" in page
    assert 'id="sharing"' not in page and "share-study" not in page and "portal.js" not in page
    r = c.get(f"/portal/studies/{tagged['r1']}")
    assert r.status_code == 200 and "NÚÑEZ, JOSÉ" in r.get_data(as_text=True)
    for study in ("a", "b"):
        r = c.get(f"/portal/studies/{tagged[study]}")
        assert r.status_code == 404 and "NÚÑEZ" not in r.get_data(as_text=True)
        r = c.get(f"/portal/api/studies/{tagged[study]}/series")
        assert r.status_code == 404 and r.json["error"] == "no_such_study"
    # A search narrows the list; it never widens it.
    page = c.get("/portal?q=munoz").get_data(as_text=True)
    assert tagged["r3"] in page and tagged["r1"] not in page
    page = c.get("/portal?q=P-2").get_data(as_text=True)
    assert tagged["b"] not in page and "Ningún estudio coincide" in page
    assert 'id="next-page"' not in c.get("/portal").get_data(as_text=True)
    # Read-only: no shares, no staff routes.
    assert c.get("/portal/api/shares").status_code == 403
    assert c.post("/api/shares", json={}).status_code == 403
    assert c.get("/staff/api/studies").status_code == 403


def test_rule_login_pages_through_many_studies(site, tagged):
    from authsvc import portal

    for n in range(portal.RULE_PAGE_SIZE + 3):
        data = fake_study(f"PX-{n}", f"x{n}", name="MUÑOZ^INÉS", values={REF: ["RIOS^CARMEN"]})
        ingest.store_study(data["study_orthanc_id"], data)
    c = client_as(site, "en", login="dra-rios", password=tagged["rule_pw"])
    first = c.get("/portal").get_data(as_text=True)
    assert first.count('<li class="study"') == portal.RULE_PAGE_SIZE and 'id="next-page"' in first
    second = c.get("/portal?page=2").get_data(as_text=True)
    assert second.count('<li class="study"') == 5 and 'id="previous-page"' in second
    assert 'id="next-page"' not in second and tagged["a"] not in first + second


def test_share_holder_sees_only_the_shared_study(site, tagged):
    patient = client_as(site, patient_id="P-1", password=tagged["pw_a"])
    created = patient.post("/api/shares", json={"study": tagged["r1"], "days": 3}).json
    holder = client_as(site, share=share_secret(created))
    page = holder.get("/portal").get_data(as_text=True)
    assert "<h1>Estudios compartidos con usted</h1>" in page
    assert "Compartido por NÚÑEZ, JOSÉ hasta el" in page and "NÚÑEZ, JOSÉ" in page
    assert tagged["r1"] in page and tagged["a"] not in page and tagged["r3"] not in page
    # Read-only: nothing to share, no form.
    assert 'id="sharing"' not in page and "share-study" not in page
    assert holder.get(f"/portal/studies/{tagged['r1']}").status_code == 200
    for study in ("a", "b", "r3"):  # a: the same patient's other study
        assert holder.get(f"/portal/studies/{tagged[study]}").status_code == 404
        assert holder.get(f"/portal/api/studies/{tagged[study]}/series").status_code == 404
    assert holder.get("/portal/api/shares").status_code == 403
    assert holder.post("/api/shares", json={}).status_code == 403
    # Revoked: the holder's session is over at once.
    assert patient.post(f"/api/shares/{created['id']}/revoke", json={}).status_code == 200
    r = holder.get("/portal")
    assert r.status_code == 302 and r.headers["Location"] == "/"
    assert (
        client_as(site).post("/api/login", json={"share": share_secret(created)}).status_code == 401
    )


def test_share_of_all_studies_never_reaches_another_patient(site, tagged):
    patient = client_as(site, patient_id="P-1", password=tagged["pw_a"])
    holder = client_as(site, "en", share=share_secret(patient.post("/api/shares", json={}).json))
    page = holder.get("/portal").get_data(as_text=True)
    assert "Studies shared with you" in page
    assert tagged["a"] in page and tagged["r1"] in page
    assert tagged["b"] not in page and tagged["r3"] not in page
    assert holder.get(f"/portal/studies/{tagged['r3']}").status_code == 404


def test_patient_manages_shares_from_the_portal(site, tagged):
    c = client_as(site, patient_id="P-1", password=tagged["pw_a"])
    page = c.get("/portal").get_data(as_text=True)
    assert 'id="sharing"' in page and "portal.js" in page
    assert 'id="share-days"' in page and 'value="7"' in page and 'max="30"' in page
    assert "De 1 a 30 días." in page and "Todos mis estudios, también los futuros" in page
    assert f'<option value="{tagged["r1"]}">RODILLA · 1 ene 2026</option>' in page
    assert page.count('class="secondary share-study"') == 2
    assert c.get("/portal/api/shares").json == {"shares": [], "search": ""}
    everything = c.post("/api/shares", json={"days": 3}).json
    one = c.post("/api/shares", json={"study": tagged["r1"]}).json
    rows = c.get("/portal/api/shares").json["shares"]
    assert [r["id"] for r in rows] == [one["id"], everything["id"]]  # newest first
    assert rows[0]["what"] == "RODILLA · 1 ene 2026" and rows[0]["study"] == tagged["r1"]
    assert rows[1]["what"] == "Todos sus estudios" and rows[1]["study"] is None
    # Dates in the page's language: "5 ene 2026, 14:05".
    import re

    assert re.fullmatch(r"\d{1,2} \w{3,4}\.? \d{4}, \d{1,2}:\d{2}", rows[1]["expires"]), rows[1][
        "expires"
    ]
    assert rows[1]["revoke_url"] == f"/api/shares/{everything['id']}/revoke"
    en = client_as(site, "en", patient_id="P-1", password=tagged["pw_a"])
    row = en.get("/portal/api/shares").json["shares"][1]
    assert row["what"] == "All your studies"
    assert re.fullmatch(r"\w{3} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s[AP]M", row["expires"]), row[
        "expires"
    ]
    # Revoked: gone from the list. Another patient's share: not theirs to see or revoke.
    assert c.post(rows[1]["revoke_url"], json={}).status_code == 200
    assert [r["id"] for r in c.get("/portal/api/shares").json["shares"]] == [one["id"]]
    other = client_as(site, patient_id="P-2", password=tagged["pw_b"])
    assert other.get("/portal/api/shares").json == {"shares": [], "search": ""}
    assert other.post(f"/api/shares/{one['id']}/revoke", json={}).status_code == 404
    assert client_as(site).get("/portal/api/shares").status_code == 401


def test_share_days_come_from_the_settings(tmp_path, database_url):
    app = make_app(tmp_path, database_url, SHARE_DEFAULT_DAYS=5, SHARE_MAX_DAYS=10)
    try:
        data = fake_study("P-5", "5")
        pw = ingest.store_study(data["study_orthanc_id"], data)
        page = (
            client_as(app, "en", patient_id="P-5", password=pw)
            .get("/portal")
            .get_data(as_text=True)
        )
        assert 'value="5"' in page and 'max="10"' in page and "From 1 to 10 days." in page
        assert "Choose a number of days from 1 to 10." in page  # the message of a refused number
    finally:
        database.close()


def test_staff_see_rule_logins_of_each_study(site, tagged):
    c = staff_client(site, "rad")
    assert dashboard_row(c, tagged["r1"])["rule_logins"] == ["dra-rios"]
    assert dashboard_row(c, tagged["r3"])["rule_logins"] == ["dra-rios"]
    assert dashboard_row(c, tagged["a"])["rule_logins"] == []
    page = c.get("/staff").get_data(as_text=True)
    assert "Médicos / instituciones" in page and 'id="rules-error"' not in page
    page = c.get("/staff/rules").get_data(as_text=True)
    assert "rules.js" in page and 'id="rules-file-error"' in page and "make rule-password" in page
    assert 'aria-current="page"' in page


def test_staff_list_and_revoke_shares(site, tagged):
    patient = client_as(site, patient_id="P-1", password=tagged["pw_a"])
    created = patient.post("/api/shares", json={"study": tagged["r1"]}).json
    holder = client_as(site, share=share_secret(created))
    c = staff_client(site)
    rows = c.get("/staff/api/shares").json["shares"]
    assert len(rows) == 1
    row = rows[0]
    assert row["patient_id"] == "P-1" and row["patient_name_text"] == "NÚÑEZ, JOSÉ"
    assert row["what"] == "RODILLA · 1 ene 2026" and row["state_text"] == "Activo" and row["active"]
    assert [r["id"] for r in c.get("/staff/api/shares?q=nunez").json["shares"]] == [created["id"]]
    assert c.get("/staff/api/shares?q=P-2").json["shares"] == []
    assert c.post(row["revoke_url"], json={}).status_code == 200
    assert holder.get("/api/session").status_code == 401
    assert c.get("/staff/api/shares").json["shares"] == []
    ended = c.get("/staff/api/shares?all=1").json["shares"]
    assert [r["state"] for r in ended] == ["revoked"] and not ended[0]["active"]
    assert ended[0]["state_text"].startswith("Revocado el ") and ended[0]["state_text"].endswith(
        " por admin"
    )
    page = c.get("/staff/shares").get_data(as_text=True)
    assert "shares.js" in page and "Mostrar también los enlaces terminados" in page


def test_rules_file_error_is_prominent_for_staff(site, tagged):
    with open(site.config["RULES_FILE"], "w") as fh:
        fh.write('{"logins": [ nonsense')
    c = staff_client(site, lang="en")
    page = c.get("/staff").get_data(as_text=True)
    assert (
        'id="rules-error"' in page and "every physician and institution login is disabled" in page
    )
    assert "not valid JSON" in page
    assert (
        client_as(site)
        .post("/api/login", json={"login": "dra-rios", "password": tagged["rule_pw"]})
        .status_code
        == 401
    )


def test_lost_slip_text_is_configurable_per_language(tmp_path, database_url):
    app = make_app(
        tmp_path, database_url, LOST_SLIP_TEXT={"es": "Llame al 0212-555-0101, extensión 23."}
    )
    try:
        es = client_as(app, "es").get("/").get_data(as_text=True)
        en = client_as(app, "en").get("/").get_data(as_text=True)
        assert 'id="lost-slip"' in es and "Llame al 0212-555-0101, extensión 23." in es
        assert "Lost your slip?" in en and "0212-555-0101" not in en  # built-in text
    finally:
        database.close()
