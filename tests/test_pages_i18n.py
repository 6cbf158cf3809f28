"""The gettext catalogs keep up with the code: every message of the Python
modules and templates has a Spanish translation, with the same placeholders,
and the committed .mo (what the service reads) matches the .po (what people
edit). To update: see docs (Languages) — pybabel extract, update, compile."""

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "authsvc" / "translations"
PO = TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.po"
MO = TRANSLATIONS / "es" / "LC_MESSAGES" / "messages.mo"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted():
    """Every message id in authsvc's Python modules and templates."""
    method_map = [("authsvc/**.py", "python"), ("authsvc/templates/**.html", "jinja2")]
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(str(ROOT), method_map):
        if not filename.startswith("authsvc"):
            continue
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def catalog():
    with open(PO, "rb") as fh:
        return read_po(fh)


def test_every_message_has_a_spanish_translation(catalog):
    messages = extracted()
    assert len(messages) > 100
    missing = [
        f"{where}: {msgid!r}"
        for msgid, where in messages.items()
        if not catalog.get(msgid) or not catalog.get(msgid).string
    ]
    assert not missing, "untranslated (run pybabel extract/update):\n" + "\n".join(missing)


def test_no_stale_or_fuzzy_entries(catalog):
    messages = extracted()
    stale = [m.id for m in catalog if m.id and m.id not in messages]
    assert not stale, f"messages no longer in the code: {stale}"
    assert not [m.id for m in catalog if m.id and m.fuzzy]


def test_placeholders_match(catalog):
    for m in catalog:
        if m.id:
            assert sorted(PLACEHOLDER.findall(m.id)) == sorted(PLACEHOLDER.findall(m.string)), m.id


def test_compiled_catalog_matches(catalog):
    with open(MO, "rb") as fh:
        compiled = read_mo(fh)
    source = {m.id: m.string for m in catalog if m.id}
    built = {m.id: m.string for m in compiled if m.id}
    assert built == source, "messages.mo is stale: pybabel compile -d authsvc/translations"
