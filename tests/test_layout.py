"""How the suite is put together (CONTRIBUTING.md, "Tests"): helpers imported
from tests.helpers, never from conftest and never through sys.path edits; one
free_port; the `stack` and `browser` markers registered, strict, and enforced
on whatever a test starts; no module imports a test module."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import markers_needed

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "bench").glob("*.py"))


def test_nothing_imports_conftest_or_edits_sys_path():
    path_edit = re.compile(r"\bsys\.path\b")
    from_conftest = re.compile(r"^\s*(from conftest import|import conftest)", re.M)
    for source in SOURCES:
        if source.name == "test_layout.py":
            continue
        text = source.read_text(encoding="utf-8")
        assert not from_conftest.search(text), f"{source.name} imports conftest"
        assert not path_edit.search(text), f"{source.name} edits sys.path"


def test_free_port_is_defined_once():
    defined = [
        source.name
        for source in SOURCES
        if re.search(r"^def _?free_port\(", source.read_text(encoding="utf-8"), re.M)
    ]
    assert defined == ["helpers.py"]


def test_the_markers_are_registered_and_strict():
    pytest_config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]
    options = pytest_config["ini_options"]
    assert "--strict-markers" in options["addopts"].split()
    assert {line.split(":")[0] for line in options["markers"]} == {"stack", "browser"}
    assert options["pythonpath"] == ["."]


@pytest.mark.parametrize(
    "argv, needed",
    [
        (["Orthanc", "/data/orthanc/config"], {"stack"}),
        # deploy/orthanc-trixie's wrapper (AUTHSVC_ORTHANC_COMMAND) runs Orthanc 1.12.
        (["/var/cache/authsvc/orthanc-trixie/Orthanc", "/data/orthanc/config"], {"stack"}),
        (["/usr/sbin/nginx", "-e", "e.log", "-c", "nginx.conf", "-g", "daemon off;"], {"stack"}),
        (["nginx", "-t", "-q", "-c", "nginx.conf"], set()),  # reads its configuration only
        (["Orthanc", "--version"], set()),  # what doctor asks
        # gunicorn's -t is its timeout, not a configuration test.
        ([sys.executable, "-m", "gunicorn", "-t", "30", "authsvc:create_app()"], {"stack"}),
        (["/usr/bin/chromedriver", "--version"], {"browser"}),
        (
            [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:1", "authsvc:create_app()"],
            {"stack"},
        ),
        ([sys.executable, "-m", "deploy.trial", "run", "--data-dir", "data"], {"stack"}),
        ([sys.executable, "-m", "deploy.trial", "configure", "--data-dir", "data"], set()),
        ([sys.executable, "-m", "flask", "--app", "authsvc", "migrate"], set()),
        (["/usr/bin/chromedriver", "--port=4444"], {"browser"}),
        ("chromium --headless --dump-dom about:blank", {"browser"}),
        (["storescu", "127.0.0.1", "4242", "a.dcm"], set()),
        ([], set()),
    ],
)
def test_which_command_lines_need_which_marker(argv, needed):
    assert markers_needed(argv) == needed


# nginx on a configuration that does not exist: it would stop at once, were
# the audit hook of conftest not to refuse it first.
NO_NGINX = ["nginx", "-e", "/dev/null", "-c", "/nonexistent/nginx.conf", "-g", "daemon off;"]


def test_an_unmarked_test_cannot_start_nginx():
    with pytest.raises(RuntimeError, match=r"mark it @pytest\.mark\.stack"):
        subprocess.Popen(NO_NGINX, stderr=subprocess.DEVNULL)


def test_an_unmarked_test_cannot_start_chromium():
    with pytest.raises(RuntimeError, match=r"mark it @pytest\.mark\.browser"):
        subprocess.Popen(["/usr/bin/chromedriver", "--version"], stdout=subprocess.DEVNULL)


@pytest.mark.stack
def test_a_test_marked_stack_may_start_nginx():
    done = subprocess.run(NO_NGINX, capture_output=True, text=True, timeout=10)
    assert done.returncode != 0 and "/nonexistent/nginx.conf" in done.stderr


def test_the_service_package_starts_nothing_and_holds_no_nginx():
    """Launching, installing and nginx's configuration live in deploy/ (not
    installed with the service): the package a server runs starts no process
    and writes no web server's configuration."""
    for source in sorted((ROOT / "authsvc").rglob("*.py")):
        text = source.read_text(encoding="utf-8")
        for word in ("proxy_pass", "subprocess.Popen", "systemctl"):
            assert word not in text, f"{source.relative_to(ROOT)} has {word}"
    assert (ROOT / "deploy" / "templates" / "nginx-site.conf").is_file()


def test_every_relative_import_names_a_module_that_exists():
    """Imports inside functions run late (doctor's did, after a module moved):
    each `from .x import` of authsvc/ and deploy/ must name a file that is there,
    and the installed service imports nothing of deploy/."""
    for package in ("authsvc", "deploy"):
        for source in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(source.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ImportFrom):
                    continue
                if package == "authsvc":
                    assert not (node.module or "").startswith("deploy"), source
                if node.level != 1:
                    continue
                base = source.parent
                names = [node.module] if node.module else [a.name for a in node.names]
                for name in names:
                    path = base.joinpath(*name.split("."))
                    assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), (
                        f"{source.relative_to(ROOT)}: from .{name}"
                    )


def imported_names(source):
    """(line, full name) of what `source` imports: `from tests import test_x`
    and `from .test_x import y` are named tests.test_x too."""
    package = list(source.relative_to(ROOT).parent.parts)
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package[: len(package) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            yield node.lineno, base
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def test_no_module_imports_a_test_module():
    """A test module is for pytest to collect: the fixtures, helpers and
    constants other modules need are in modules that are not tests
    (tests/helpers.py, tests/pages_world.py, tests/phone.py, ...), never
    imported from another test module."""
    found = []
    for source in sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "bench").rglob("*.py")):
        for line, name in imported_names(source):
            parts = name.split(".")
            if parts[0] == "tests" and len(parts) > 1 and parts[1].startswith("test_"):
                found.append(f"{source.relative_to(ROOT)}:{line} imports {'.'.join(parts[:2])}")
    assert not found, "test modules imported:\n  " + "\n  ".join(sorted(set(found)))
