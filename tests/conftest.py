"""Fixtures, and the markers' checks. `stack` starts the real system
(Debian's Orthanc with the project's Lua, the service under gunicorn, nginx)
once per test session in a temporary folder with free ports, through the same
launcher as `make run`. Which Orthanc: AUTHSVC_ORTHANC_COMMAND
(deploy/trial.py); `orthanc_version` tells a test which one runs.
`--stack-only` runs only the tests that use `stack` (`make test-orthanc-1.12`).
Plain helpers are in tests/helpers.py."""

import sys
from contextlib import ExitStack

import pytest
import requests

from deploy.trial import Stack
from tests.helpers import (
    ADMIN_PASSWORD,
    DECISION_CACHE_SECONDS,
    ON_POSTGRES,
    Browser,
    free_port,
    fresh_database,
    markers_needed,
    postgres_database,
    print_log_tails,
    service_app,
)

# Shared fixtures and checks that moved out of test modules (CONTRIBUTING.md,
# "Tests") keep pytest's detailed assert messages: it rewrites the asserts of
# test modules and conftest only, unless told.
pytest.register_assert_rewrite("tests.chromium", "tests.decisions", "tests.pages_world")


def pytest_addoption(parser):
    parser.addoption(
        "--stack-only",
        action="store_true",
        help="run only the tests that start the real stack (the `stack` fixture)",
    )


def pytest_collection_modifyitems(config, items):
    # The marker is written on each test (explicit), and checked here: a test
    # of the `stack` fixture left unmarked would run in the quick set.
    unmarked = [
        item.nodeid
        for item in items
        if "stack" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("stack")
    ]
    if unmarked:
        raise pytest.UsageError(
            "tests using the `stack` fixture must be marked @pytest.mark.stack:\n  "
            + "\n  ".join(unmarked)
        )
    if not config.getoption("--stack-only"):
        return
    keep = [item for item in items if "stack" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)  # counted as deselected
        items[:] = keep


# The test whose setup, call or teardown runs now (None between tests).
_running = None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    global _running
    _running = item
    try:
        return (yield)
    finally:
        _running = None


def _refuse_unmarked_programs(event, args):
    """An audit hook: a test starting Orthanc, nginx, gunicorn or Chromium
    (itself or through a fixture) without its marker fails at once, naming
    the marker, rather than slipping into `-m "not stack and not browser"`."""
    if event != "subprocess.Popen" or _running is None:
        return
    marked = {mark.name for mark in _running.iter_markers()}
    missing = markers_needed(args[1]) - marked
    if missing:
        raise RuntimeError(
            f"{_running.nodeid} runs {args[1]!r}: mark it "
            + " and ".join(f"@pytest.mark.{name}" for name in sorted(missing))
        )


sys.addaudithook(_refuse_unmarked_programs)


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


@pytest.fixture
def database_url(tmp_path):
    """A new, empty database for one test (see fresh_database)."""
    with fresh_database(tmp_path) as url:
        yield url


@pytest.fixture
def app(tmp_path, database_url):
    with service_app(tmp_path, database_url) as application:
        yield application


@pytest.fixture
def client(app):
    return app.test_client()
