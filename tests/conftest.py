"""Fixtures. `stack` starts the real system (Debian's Orthanc with the
project's Lua, the service under gunicorn, nginx) once per test session in a
temporary folder with free ports, through the same launcher as `make run`.
Which Orthanc: AUTHSVC_ORTHANC_COMMAND (authsvc/stack.py); `orthanc_version`
tells a test which one runs. `--stack-only` runs only the tests that use
`stack` (`make test-orthanc-1.12`)."""

import os
import socket
import time
from contextlib import ExitStack, contextmanager

import pytest
import requests

from authsvc.stack import Stack

ADMIN_PASSWORD = "test-admin-Passw0rd-long-enough"
DECISION_CACHE_SECONDS = 2


def pytest_addoption(parser):
    parser.addoption(
        "--stack-only",
        action="store_true",
        help="run only the tests that start the real stack (the `stack` fixture)",
    )


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--stack-only"):
        return
    keep = [item for item in items if "stack" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)  # counted as deselected
        items[:] = keep


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Browser:
    """A client of the public entry (nginx), with its own cookie jar."""

    def __init__(self, base_url):
        self.base = base_url
        self.http = requests.Session()

    def request(self, method, path, **kw):
        kw.setdefault("timeout", 10)
        kw.setdefault("allow_redirects", False)
        return self.http.request(method, self.base + path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def login(self, **fields):
        return self.post("/api/login", json=fields)

    def logout(self):
        return self.post("/api/logout", json={})


def print_log_tails(stack, lines=40):
    """On failure, CI shows what the services said (their logs hold no secrets)."""
    for log in sorted(stack.logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        print(f"\n===== {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))


@pytest.fixture(scope="session")
def stack(request, tmp_path_factory):
    data = tmp_path_factory.mktemp("stack")
    ports = {
        k: free_port() for k in ("http_port", "orthanc_http_port", "dicom_port", "service_port")
    }
    site = dict(
        ports,
        stable_age_seconds=1,
        # STORESCU may store; SPOOFED is a known AE title expected from
        # another host; QUERIER may also query (allow_query).
        modalities={
            "STORESCU": {"host": "127.0.0.1", "port": 104},
            "SPOOFED": {"host": "127.0.0.2", "port": 104},
            "QUERIER": {"host": "127.0.0.1", "port": 104, "allow_query": True},
        },
        authsvc={"DECISION_CACHE_SECONDS": DECISION_CACHE_SECONDS, "CHANGES_POLL_SECONDS": 2},
    )
    with ExitStack() as databases:
        if ON_POSTGRES:
            # The whole system on PostgreSQL: the service's database, and
            # Orthanc's index through Debian's orthanc-postgresql plugin.
            from urllib.parse import urlsplit

            site["database_url"] = databases.enter_context(postgres_database("stack_"))
            index = urlsplit(databases.enter_context(postgres_database("orthanc_")))
            site["orthanc_postgresql"] = {
                "host": index.hostname,
                "port": index.port,
                "database": index.path.lstrip("/"),
                "username": index.username,
            }
        yield from _run_stack(request, data, site)


def _run_stack(request, data, site):
    s = Stack(data, site, env={"AUTHSVC_ADMIN_PASSWORD": ADMIN_PASSWORD})
    try:
        try:
            s.start()
        except Exception:
            print_log_tails(s)
            raise
        yield s
    finally:
        s.stop_all()
        if request.session.testsfailed:
            print_log_tails(s)


@pytest.fixture(scope="session")
def orthanc(stack):
    """Orthanc's REST API directly, as the service's own user (setup and checks only)."""
    http = requests.Session()
    http.auth = ("authsvc", stack.secrets["orthanc_password"])
    http.base = stack.orthanc_url
    return http


@pytest.fixture(scope="session")
def orthanc_version(orthanc):
    """The running Orthanc's version from /system, as numbers: (1, 10, 1).
    A test that cannot apply to one version skips with a reason naming it."""
    version = orthanc.get(orthanc.base + "/system", timeout=10).json()["Version"]
    return tuple(int(part) for part in version.split(".")[:3])


@pytest.fixture
def browser(stack):
    return Browser(stack.public_url)


@pytest.fixture(scope="session")
def admin(stack):
    b = Browser(stack.public_url)
    r = b.login(username="admin", password=ADMIN_PASSWORD)
    assert r.status_code == 200, r.text
    return b


# -- the service alone, in-process, on a fresh database (no Orthanc) ---------


@contextmanager
def postgres_database(prefix):
    """A new database on the server of AUTHSVC_TEST_DATABASE_URL, dropped after."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2

    server = os.environ["AUTHSVC_TEST_DATABASE_URL"]
    name = prefix + uuid.uuid4().hex[:16]
    admin = psycopg2.connect(server)
    admin.autocommit = True  # CREATE/DROP DATABASE cannot run in a transaction
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(server)._replace(path="/" + name))
    finally:
        with admin.cursor() as cur:
            # FORCE: a server thread of a test may still hold a connection.
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


ON_POSTGRES = bool(os.environ.get("AUTHSVC_TEST_DATABASE_URL"))


@contextmanager
def fresh_database(folder):
    """A new, empty database: a SQLite file in `folder`, or, when
    AUTHSVC_TEST_DATABASE_URL names a PostgreSQL server (`make test-postgres`),
    a database created there and dropped after."""
    if not ON_POSTGRES:
        yield f"sqlite:///{folder / 'db.sqlite3'}"
        return
    with postgres_database("authsvc_test_") as url:
        yield url


@pytest.fixture
def database_url(tmp_path):
    """A new, empty database for one test (see fresh_database)."""
    with fresh_database(tmp_path) as url:
        yield url


@contextmanager
def service_app(folder, database_url):
    """The service in-process on a migrated database, no Orthanc."""
    import json

    from authsvc import create_app
    from authsvc.db import database
    from authsvc.migrations import migrate

    secrets_file = folder / "secrets.json"
    secrets_file.write_text(
        json.dumps(
            {
                "secret_key": "k" * 40,
                "ingest_secret": "i" * 40,
                "audit_key": "a" * 40,
                "orthanc_password": "unused",
            }
        )
    )
    application = create_app(
        {
            "DATABASE_URL": database_url,
            "DATA_DIR": str(folder),
            "SECRETS_FILE": str(secrets_file),
            "RULES_FILE": str(folder / "rules.json"),
            "RULE_PASSWORDS_FILE": str(folder / "rule-passwords.json"),
            "ORTHANC_URL": "http://127.0.0.1:9",
        }
    )
    with database.connection_context():
        migrate()
    # A fresh database: forget which study accesses this process already
    # audited (the same fake IDs come back in every test).
    from authsvc import audit

    audit._seen.clear()
    # No app context stays pushed: each test-client request gets its own, as
    # in production (a shared one would share flask.g between requests).
    database.connect(reuse_if_open=True)
    yield application
    if not database.is_closed():
        database.close()


@pytest.fixture
def app(tmp_path, database_url):
    with service_app(tmp_path, database_url) as application:
        yield application


@pytest.fixture
def client(app):
    return app.test_client()


ADMIN_PASSWORD = "admin password long enough"


def admin_test_client(app, password=ADMIN_PASSWORD):
    """A test client of the in-process service logged in as the admin
    account (made if missing)."""
    from authsvc.cli import ensure_admin

    ensure_admin("admin", password)
    c = app.test_client()
    r = c.post("/api/login", json={"username": "admin", "password": password})
    assert r.status_code == 200, r.get_json()
    return c


def fake_study(patient_id="P1", study="1", series=2, per_series=2, name="DOE^JOHN", values=None):
    """What ingest.read_study returns for a study, made up without Orthanc.
    Orthanc IDs are well-formed (5 groups of 8 hex digits) and distinct per
    patient, study, series and instance."""
    pid = patient_id.encode().hex()[-8:].rjust(8, "0")
    sid = study.encode().hex()[-8:].rjust(8, "0")

    def oid(kind, n=0):
        return f"{kind:0>8}-{pid}-{sid}-{n:08x}-00000000"

    return {
        "patient": {"PatientID": patient_id, "PatientName": name, "PatientBirthDate": "19800101"},
        "patient_orthanc_id": f"000000ba-{pid}-00000000-00000000-00000000",
        "tags": {
            "StudyInstanceUID": f"1.2.{study}",
            "StudyDate": "20260101",
            "StudyDescription": "CT",
        },
        "modalities": ["CT"],
        "values": values if values is not None else {"0008,0080": ["H"]},
        "series": [(oid("5e", i), f"1.2.{study}.{i}") for i in range(series)],
        "instances": [
            (oid("1a", i * 100 + j), f"1.2.{study}.{i}.{j}")
            for i in range(series)
            for j in range(per_series)
        ],
        "study_orthanc_id": oid("57"),
        # The PatientID element's bytes in the first instance of each series,
        # as Orthanc serves them (/instances/{id}/content/0010-0020), padded.
        "patient_id_raw": [
            {
                "series": oid("5e", i),
                "charset": "ISO_IR 192",
                "raw": (patient_id + " " * (len(patient_id.encode()) % 2)).encode().hex(),
            }
            for i in range(series)
        ],
    }


def stack_db_url(stack):
    return stack.site["database_url"] or f"sqlite:///{stack.data_dir / 'authsvc.sqlite3'}"


def stack_sql(stack, sql, *params):
    """Run SQL on the stack service's own database (SQLite or PostgreSQL), as
    a test that makes time pass or a disk fail must. `{p}` marks a parameter."""
    from playhouse.db_url import connect

    db = connect(stack_db_url(stack))
    try:
        with db.atomic():
            db.execute_sql(sql.format(p=db.param), params)
    finally:
        db.close()
