"""What the tests share that is not a fixture: constants, a client of the
public entry, a fresh database, the service in-process and its rules file,
made-up studies, the stack's database and rules file.
Imported as `tests.helpers` (pyproject's pytest `pythonpath`, and `python -m`
from the repository's root for bench/); fixtures stay in tests/conftest.py."""

import json
import os
import socket
import time
import uuid
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import requests

# The admin account's password on every stack the tests start, and in the
# in-process service (admin_test_client).
ADMIN_PASSWORD = "admin password long enough"
# The stack fixture's decision cache: tests of a revocation wait this long.
DECISION_CACHE_SECONDS = 2
# `make test-postgres`: every in-process test and the stack on PostgreSQL.
ON_POSTGRES = bool(os.environ.get("AUTHSVC_TEST_DATABASE_URL"))


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


@contextmanager
def postgres_database(prefix):
    """A new database on the server of AUTHSVC_TEST_DATABASE_URL, dropped after."""
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


@contextmanager
def service_app(folder, database_url, **secrets):
    """The service in-process on a migrated database, no Orthanc; `secrets`
    adds to (or replaces) the secrets file's defaults."""
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
                **secrets,
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


def admin_test_client(app, password=ADMIN_PASSWORD):
    """A test client of the in-process service logged in as the admin
    account (made if missing)."""
    from authsvc.cli import ensure_admin

    ensure_admin("admin", password)
    c = app.test_client()
    r = c.post("/api/login", json={"username": "admin", "password": password})
    assert r.status_code == 200, r.get_json()
    return c


def write_rules(app, logins, passwords_for=()):
    """The in-process service's rules file (`logins`), and a password for each
    login of `passwords_for`: {login: password}."""
    from authsvc.cli import set_rule_password

    rules_path = app.config["RULES_FILE"]
    with open(rules_path, "w") as fh:
        fh.write("// test rules\n" + json.dumps({"logins": logins}, indent=1))
    made = {}
    for name in passwords_for:
        made[name] = set_rule_password(app.config["RULE_PASSWORDS_FILE"], rules_path, name)
    return made


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


def add_rule_login(stack, entry):
    """Add one login to the stack's rules file, keeping the others (other test
    modules share the stack and may have theirs there)."""
    from authsvc.rules import strip_comments

    path = stack.data_dir / "rules.json"
    try:
        data = json.loads(strip_comments(path.read_text(encoding="utf-8")) or "{}")
        logins = [e for e in data.get("logins", []) if e.get("login") != entry["login"]]
    except (OSError, ValueError, AttributeError):
        logins = []
    path.write_text(
        "// written by the tests (tests/helpers.py, add_rule_login)\n"
        + json.dumps({"logins": logins + [entry]}, ensure_ascii=False, indent=1),
        encoding="utf-8",
    )
    return path


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


# The programs that make a test a `stack` or a `browser` one (pyproject's
# markers): conftest refuses to start them from a test not marked so, so that
# `-m "not stack and not browser"` never starts a server or a browser.
STACK_PROGRAMS = {"orthanc", "nginx", "gunicorn"}
BROWSER_PROGRAMS = {"chromium", "chromedriver"}
# Their options with which they only report (a version, a configuration test)
# and serve nothing: `doctor` asks `Orthanc --version`; nginx -t.
REPORTS_ONLY = {"orthanc": {"--version"}, "nginx": {"-t", "-T", "-v", "-V"}, "gunicorn": {"-v"}}


def markers_needed(argv):
    """The markers a test needs to run this command line: `stack` for Orthanc
    (or a wrapper named after it), nginx or gunicorn when they serve (not
    when asked only for a version or a configuration test), and `make run`'s
    launcher (`python -m deploy.trial run`); `browser` for Chromium and its
    driver, whatever their options."""
    if isinstance(argv, (str, bytes, os.PathLike)):
        words = os.fsdecode(argv).split()
    else:
        words = [os.fsdecode(word) for word in argv]
    if not words:
        return set()
    program = os.path.basename(words[0]).lower()
    if "-m" in words[:-1]:  # python -m <module>: the module is the program
        module = words[words.index("-m") + 1]
        rest = words[words.index("-m") + 2 :]
        program = "orthanc" if module == "deploy.trial" and rest[:1] == ["run"] else module
    needed = set()
    if program in BROWSER_PROGRAMS:
        needed.add("browser")
    if "orthanc" in program:  # Orthanc, or a wrapper named after it
        program = "orthanc"
    reports_only = REPORTS_ONLY.get(program, set()) | {"--version"}
    if program in STACK_PROGRAMS and not reports_only & set(words[1:]):
        needed.add("stack")
    return needed


@contextmanager
def calls_of(obj, name):
    """Every call of `obj.name` meanwhile, as its positional arguments (the
    call itself still made); afterwards `obj` has what it had before (an
    instance attribute set back, or the class's own method again)."""
    own = name in vars(obj)
    real = getattr(obj, name)
    seen = []

    def recording(*args, **kwargs):
        seen.append(args)
        return real(*args, **kwargs)

    setattr(obj, name, recording)
    try:
        yield seen
    finally:
        if own:
            setattr(obj, name, real)
        else:
            delattr(obj, name)
