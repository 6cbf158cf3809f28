"""The README keeps up with the code: its first commands, every setting."""

import re
from pathlib import Path

from authsvc.config import SETTINGS
from authsvc.stack import SITE_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_run_and_test_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[:2] == ["make run", "make test"]
    assert README.index("```sh") < 40


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_service_setting_is_documented():
    for setting in SETTINGS:
        assert f"| `{setting.name}` |" in README, setting.name


def test_every_site_setting_is_documented():
    for key in SITE_DEFAULTS:
        assert f"| `{key}` |" in README, key


def test_every_patient_access_lua_setting_is_documented():
    lua = "".join(p.read_text() for p in (ROOT / "lua").glob("*.lua"))
    for key in set(re.findall(r'settings\["(\w+)"\]', lua)):
        assert f"| `{key}` |" in README, key
