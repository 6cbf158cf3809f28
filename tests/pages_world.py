"""The people's pages in-process (Flask's test client, the `database_url`
fixture's database, no Orthanc): the service with a display key
(`make_app`), the `site` and `world` fixtures (two patients with a study
each, an admin and a radiologist), clients logged in as anyone, and the rule
and share logins of that world. Shared by tests/test_pages_app.py and the
tests of other pages."""

import json

import pytest

from authsvc import create_app, ingest, passwords
from authsvc.cli import ensure_admin
from authsvc.db import database
from authsvc.migrations import migrate
from authsvc.models import StaffUser
from tests.helpers import fake_study, write_rules

STAFF_PASSWORD = "a staff password, long enough"
DISPLAY_KEY = "d" * 43
STAFF_PAGES = ["/staff", "/staff/users", "/staff/slips/P-1", "/staff/shares", "/staff/rules"]


def make_app(tmp_path, database_url, display_key=DISPLAY_KEY, **config):
    """The service in-process on `database_url` (the `database_url` fixture:
    the database every in-process test gets), migrated, with a display key."""
    secrets = {"secret_key": "k" * 40, "ingest_secret": "i" * 40, "orthanc_password": "unused"}
    if display_key:
        secrets["display_key"] = display_key
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps(secrets))
    application = create_app(
        {
            "DATABASE_URL": database_url,
            "DATA_DIR": str(tmp_path),
            "SECRETS_FILE": str(secrets_file),
            "ORTHANC_URL": "http://127.0.0.1:9",
            "RULES_FILE": str(tmp_path / "rules.json"),
            "RULE_PASSWORDS_FILE": str(tmp_path / "rule-passwords.json"),
            "PUBLIC_URL": "https://pacs.example.org",
            **config,
        }
    )
    with database.connection_context():
        migrate()
    database.connect(reuse_if_open=True)
    return application


@pytest.fixture
def site(tmp_path, database_url):
    application = make_app(tmp_path, database_url)
    yield application
    if not database.is_closed():
        database.close()


@pytest.fixture
def world(site):
    """Two patients with a first study each, an admin and a radiologist."""
    a = fake_study("P-1", "1", name="NÚÑEZ^JOSÉ")
    b = fake_study("P-2", "2", name="PEÑA^ÁNGELA")
    pw_a = ingest.store_study(a["study_orthanc_id"], a)
    pw_b = ingest.store_study(b["study_orthanc_id"], b)
    ensure_admin("admin", STAFF_PASSWORD)
    StaffUser.create(
        username="rad",
        role="radiologist",
        password_hash=passwords.hash_password(STAFF_PASSWORD, generated=False),
    )
    return {"a": a["study_orthanc_id"], "b": b["study_orthanc_id"], "pw_a": pw_a, "pw_b": pw_b}


def client_as(app, lang="es", **login):
    c = app.test_client()
    c.environ_base["HTTP_ACCEPT_LANGUAGE"] = lang
    if login:
        r = c.post("/api/login", json=login)
        assert r.status_code == 200, r.json
    return c


def staff_client(app, username="admin", lang="es"):
    return client_as(app, lang, username=username, password=STAFF_PASSWORD)


def share_secret(created):
    return created["url"].split("#share=")[1]


def rule_and_share_logins(site, world):
    """A rule login that sees study a (P-1's), and a share of study b (P-2's)."""
    pw = write_rules(
        site,
        [{"login": "dra-rios", "rules": [{"tag": "InstitutionName", "value": "H"}]}],
        ["dra-rios"],
    )["dra-rios"]
    patient = client_as(site, patient_id="P-2", password=world["pw_b"])
    secret = share_secret(patient.post("/api/shares", json={"study": world["b"]}).json)
    return {"rule": {"login": "dra-rios", "password": pw}, "share": {"share": secret}}


def client_of(site, world, who):
    """A test client logged in as `who`: "nobody" (no login), "patient" (P-1),
    "rule" or "share" (rule_and_share_logins), "radiologist" or "staff"
    (the radiologist rad)."""
    if who == "patient":
        return client_as(site, patient_id="P-1", password=world["pw_a"])
    if who in ("rule", "share"):
        return client_as(site, **rule_and_share_logins(site, world)[who])
    if who in ("radiologist", "staff"):
        return staff_client(site, "rad")
    return client_as(site)
