"""The documentation keeps up with the code: README.md's first commands stay
first and the page short, docs/configuration.md names every setting, and no
relative link of README.md, docs/ or the other Markdown pages points at a file
or heading that is gone."""

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest

from authsvc.config import SETTINGS
from deploy.site import SITE_DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *(ROOT / name for name in ("CHANGELOG.md", "CONTRIBUTING.md", "bench/README.md")),
]
README_MAX_LINES = 200


def test_readme_starts_with_run_and_test_commands():
    first_block = re.search(r"```sh\n(.*?)```", README, re.S).group(1)
    commands = [line.split("#")[0].strip() for line in first_block.splitlines()]
    assert commands[:2] == ["make run", "make test"]
    assert README.index("```sh") < 40


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_stays_a_front_door():
    # The reference lives in docs/: the front page is what a hospital reads first.
    assert len(README.splitlines()) < README_MAX_LINES


def test_every_service_setting_is_documented():
    for setting in SETTINGS:
        assert f"| `{setting.name}` |" in CONFIGURATION, setting.name


def test_every_site_setting_is_documented():
    for key in SITE_DEFAULTS:
        assert f"| `{key}` |" in CONFIGURATION, key


def test_every_patient_access_lua_setting_is_documented():
    lua = "".join(p.read_text() for p in (ROOT / "lua").glob("*.lua"))
    for key in set(re.findall(r'settings\["(\w+)"\]', lua)):
        assert f"| `{key}` |" in CONFIGURATION, key


def _outside_code(text):
    """The text with fenced code blocks and inline code blanked: a `# comment`
    in a shell block is no heading, and `[x](y)` in code is no link."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def anchor(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped
    (inline code's backticks with it, its text kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    kept = "".join(c for c in text if c in " -_" or unicodedata.category(c)[0] in "LN")
    return kept.replace(" ", "-")


def anchors(path):
    found, seen = set(), {}
    text = re.sub(
        r"^(```|~~~).*?^\1[^\n]*$", "", path.read_text(encoding="utf-8"), flags=re.S | re.M
    )
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*$", text, re.M):
        slug = anchor(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        found.add(slug if n == 0 else f"{slug}-{n}")
    return found


def links(path):
    text = _outside_code(path.read_text(encoding="utf-8"))
    for target in re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, mailto: ...
            continue
        yield target


def test_anchor_follows_githubs_rules():
    assert anchor("What plugin 0.11.4 does with `deploy/docker/orthanc.json`") == (
        "what-plugin-0114-does-with-deploydockerorthancjson"
    )
    assert anchor("Install on a server (Debian 13; Debian 12, Ubuntu 24.04 and 22.04)") == (
        "install-on-a-server-debian-13-debian-12-ubuntu-2404-and-2204"
    )
    assert anchor("Enforcement: one decision, three locks") == (
        "enforcement-one-decision-three-locks"
    )


def test_a_link_inside_code_is_not_a_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("see [a](gone.md)\n\n```sh\necho [b](code.md)\n```\n`[c](inline.md)`\n")
    assert list(links(page)) == ["gone.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_reaches_its_file_and_heading(page):
    broken = []
    for target in links(page):
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / unquote(file_part)).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and unquote(fragment) not in anchors(dest):
            broken.append(f"{target}: no such heading in {dest.relative_to(ROOT)}")
    assert not broken, broken


def test_every_docs_page_is_linked_from_the_index():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    for page in (ROOT / "docs").glob("*.md"):
        if page.name != "README.md":
            assert f"]({page.name})" in index, page.name


# Text says the thing itself, never the number of the tracker entry that asked
# for it. (The examples below are built from words, so that this file has none.)
ISSUE_NUMBER = re.compile(r"\bissues?\s*#?\d+|\blater\s+issue", re.I)
SEARCHED = ["README.md", "CHANGELOG.md", "CONTRIBUTING.md", "Makefile", "Dockerfile"]
SEARCHED_DIRS = ["docs", "authsvc", "bench", "lua", "deploy", "orthanc-config", "tests"]


def _searched_texts():
    paths = [ROOT / name for name in SEARCHED]
    for folder in SEARCHED_DIRS:
        paths += [p for p in sorted((ROOT / folder).rglob("*")) if p.is_file()]
    for path in paths:
        if "__pycache__" in path.parts or "results" in path.relative_to(ROOT).parts:
            continue
        try:
            yield path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:  # a compiled catalog, an image, a DICOM file
            continue


def test_issue_number_pattern():
    numbered = [("(issue", "7)"), ("Issue", "13, part 1"), ("issue", "#18"), ("issues", "4")]
    for text in [" ".join(words) for words in numbered] + [" ".join(("a later", "issue"))]:
        assert ISSUE_NUMBER.search(text), text
    for text in ("issue the patient's password", "issued 2 days ago", "reissue"):
        assert not ISSUE_NUMBER.search(text), text


def test_no_issue_numbers_in_text_or_code():
    found = [
        f"{path.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
        for path, text in _searched_texts()
        for m in ISSUE_NUMBER.finditer(text)
    ]
    assert not found, found
