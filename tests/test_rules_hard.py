"""Rules hard to break: the shipped examples work when used one
at a time as the file says; errors name the real line and what to do, in
the page's language; names match whatever accents and case, and a second
given name, without ever widening to another person; staff see the tag
values no rule matches. In-process: real logins through the app."""

import datetime
import json
import logging
import re
from pathlib import Path

import pytest

from authsvc import ingest, matching
from authsvc.cli import set_rule_password
from authsvc.models import Study
from tests.helpers import admin_test_client, fake_study

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "rules.example.json"
ADMIN_PW = "admin password long enough"


def admin(app):
    return admin_test_client(app, ADMIN_PW)


def examples(text):
    """Each example the file offers, used alone the way the file says: an
    entry with "enabled": false gets "enabled": true (the one word edited in
    place); a commented-out entry gets its // removed."""
    lines = text.splitlines()
    made = []
    for n, line in enumerate(lines):
        if '"enabled": false' in line and not line.lstrip().startswith("//"):
            edited = list(lines)
            edited[n] = line.replace('"enabled": false', '"enabled": true')
            made.append("\n".join(edited))
    start = None
    for n, line in enumerate(lines + ["//"]):
        commented = line.startswith("//") and line[2:].strip().startswith('{ "login"')
        if start is not None and (commented or not line.startswith("//") or not line[2:].strip()):
            edited = list(lines)
            for k in range(start, n):
                edited[k] = lines[k][2:]
            made.append("\n".join(edited))
            start = None
        if commented:
            start = n
    return made


def matching_value(value):
    """A tag value the rule value names (its wildcards filled in)."""
    return value.replace("*", " DE CARACAS").replace("?", "A")


@pytest.mark.parametrize("rules_file", [EXAMPLE, ROOT / "deploy/docker/site.example/rules.json"])
def test_each_shipped_example_alone_gives_a_working_rule_login(app, rules_file):
    text = rules_file.read_text(encoding="utf-8")
    variants = examples(text)
    assert len(variants) >= 3  # one per kind of tag the hospital named
    from authsvc.rules import parse_rules

    assert parse_rules(text) == []  # as shipped: no login at all
    for n, variant in enumerate(variants):
        specs = parse_rules(variant)  # a RulesError here: the comma trap
        assert len(specs) == 1
        spec = specs[0]
        tag, value = spec.rules[0]
        seen = fake_study(f"EX-{n}", f"{n}1", values={tag: [matching_value(value)]})
        unseen = fake_study(f"EX-{n}", f"{n}2", values={tag: ["SOMEONE ELSE"]})
        for data in (seen, unseen):
            ingest.store_study(data["study_orthanc_id"], data)
        Path(app.config["RULES_FILE"]).write_text(variant, encoding="utf-8")
        password = set_rule_password(
            app.config["RULE_PASSWORDS_FILE"], app.config["RULES_FILE"], spec.name
        )
        client = app.test_client()
        r = client.post("/api/login", json={"login": spec.name, "password": password})
        assert r.status_code == 200, (spec.name, r.json)
        listed = {s["orthanc_id"] for s in client.get("/api/studies").json["studies"]}
        assert listed == {seen["study_orthanc_id"]}, spec.name


TRAILING_COMMA = """// rules
{
  "logins": [
    { "login": "dra-gomez",
      "rules": [ { "tag": "ReferringPhysicianName", "value": "GOMEZ^MARIA" } ] },
  ]
}
"""


def test_a_trailing_comma_is_named_at_its_own_line_in_each_language(app, caplog):
    Path(app.config["RULES_FILE"]).write_text(TRAILING_COMMA)
    staff = admin(app)
    with caplog.at_level(logging.ERROR):
        error = staff.get("/api/rules").json["error"]
    assert "line 5" in error and "comma" in error and "remove" in error.lower()
    assert "line 5" in caplog.text and "comma" in caplog.text
    es = staff.get("/staff/rules?lang=es").get_data(as_text=True)
    assert re.search(r"línea 5, columna \d+", es) and "coma" in es and "quite" in es
    assert "Expecting" not in es and "line 5" not in es
    en = staff.get("/staff/rules?lang=en").get_data(as_text=True)
    assert "line 5" in en and "comma" in en
    # Every staff page says the rules are broken, in its language.
    assert "línea 5" in staff.get("/staff?lang=es").get_data(as_text=True)


@pytest.mark.parametrize(
    "text,line,words",
    [
        # A comma missing between two entries: named at the end of the first.
        (
            '{\n "logins": [\n  {"login": "a", "rules": [{"tag": "InstitutionName", "value": "X"}]}\n'
            '  {"login": "b", "rules": [{"tag": "InstitutionName", "value": "Y"}]}\n ]\n}\n',
            3,
            ("comma", "missing"),
        ),
        # Single quotes.
        ("{\n 'logins': []\n}\n", 2, ("double quotes",)),
        # An unknown keyword: the line of the rule that names it.
        (
            '{\n "logins": [\n  {"login": "a",\n   "rules": [\n    {"tag": "InstitutionNam", '
            '"value": "X"}\n   ]}\n ]\n}\n',
            5,
            ("InstitutionNam", "keyword"),
        ),
        # A bad login name: the line of that login.
        (
            '{\n "logins": [\n\n  {"login": "Dra Gomez", "rules": [{"tag": "InstitutionName", '
            '"value": "X"}]}\n ]\n}\n',
            4,
            ("a-z",),
        ),
    ],
)
def test_errors_name_the_real_line_and_what_to_do(app, text, line, words):
    Path(app.config["RULES_FILE"]).write_text(text)
    error = admin(app).get("/api/rules").json["error"]
    assert f"line {line}" in error, error
    for word in words:
        assert word in error, error


@pytest.mark.parametrize(
    "rule,value,expected",
    [
        ("GOMEZ^MARIA", "GÓMEZ^MARÍA ELENA", True),  # a second given name
        ("GOMEZ^MARIA", "Gómez^María^Elena", True),  # ... in the middle-name part
        ("GOMEZ^MARIA", "gomez^maria^^Dra.", True),  # a title (prefix) the rule omits
        ("GOMEZ^MARIA", "GOMEZ^MARIANA", False),  # another person: not a word
        ("GOMEZ^MARIA", "GOMEZ^ANA MARIA", False),  # the rule's names come first
        ("GOMEZ^MARIA", "GOMEZ PEREZ^MARIA", False),  # another family name
        ("GOMEZ^MARIA ELENA", "GOMEZ^MARIA", False),  # the rule names more
        ("GOMEZ^MARIA^^DRA", "GOMEZ^MARIA", False),  # the rule's title must be there
        ("GOMEZ", "GOMEZ^MARIA", False),  # a family name alone opens nothing more
        ("GOMEZ MARIA", "GOMEZ MARIA ELENA", False),  # without carets: no structure, exact
        ("GOMEZ^MARIA", "GOMEZ MARIA", True),  # as before
    ],
)
def test_names_forgive_accents_case_and_more_given_names_never_another_person(
    rule, value, expected
):
    matcher = matching.Matcher.compile("ReferringPhysicianName", rule)
    assert matcher.matches(value) is expected


def test_the_rule_of_the_issue_opens_the_study_of_the_issue(app):
    data = fake_study("P-9", "9", values={"0008,0090": ["GÓMEZ^MARÍA ELENA"]})
    other = fake_study("P-9", "8", values={"0008,0090": ["GOMEZ^MARIANA"]})
    for d in (data, other):
        ingest.store_study(d["study_orthanc_id"], d)
    Path(app.config["RULES_FILE"]).write_text(
        json.dumps(
            {
                "logins": [
                    {
                        "login": "dra-gomez",
                        "rules": [{"tag": "ReferringPhysicianName", "value": "GOMEZ^MARIA"}],
                    }
                ]
            }
        )
    )
    pw = set_rule_password(app.config["RULE_PASSWORDS_FILE"], app.config["RULES_FILE"], "dra-gomez")
    c = app.test_client()
    assert c.post("/api/login", json={"login": "dra-gomez", "password": pw}).status_code == 200
    assert {s["orthanc_id"] for s in c.get("/api/studies").json["studies"]} == {
        data["study_orthanc_id"]
    }


@pytest.fixture
def unmatched(app):
    Path(app.config["RULES_FILE"]).write_text(
        json.dumps(
            {
                "logins": [
                    {
                        "login": "hu",
                        "rules": [{"tag": "InstitutionName", "value": "HOSPITAL UNIVERSITARIO"}],
                    }
                ]
            }
        )
    )
    made = {
        "matched": fake_study(
            "U-1",
            "1",
            values={"0008,0080": ["HOSPITAL UNIVERSITARIO"], "0008,0090": ["MATCHED^DOCTOR"]},
        ),
        "new": fake_study(
            "U-2",
            "2",
            values={"0008,0080": ["CLÍNICA EL ÁVILA"], "0008,0090": ["GÓMEZ^MARÍA ELENA"]},
        ),
        "new2": fake_study("U-3", "3", values={"0008,0090": ["GÓMEZ^MARÍA ELENA"]}),
        "old": fake_study("U-4", "4", values={"0008,0090": ["VIEJO^DOCTOR"]}),
    }
    for d in made.values():
        ingest.store_study(d["study_orthanc_id"], d)
    (
        Study.update(recorded_at=datetime.datetime.utcnow() - datetime.timedelta(days=31))
        .where(Study.orthanc_id == made["old"]["study_orthanc_id"])
        .execute()
    )
    return made


def test_staff_see_the_values_of_studies_no_rule_matches(app, unmatched):
    staff = admin(app)
    staff.get("/api/session")  # applies the rules file
    rows = staff.get("/staff/api/unmatched-tags").json["values"]
    got = {(r["keyword"], r["value"]): r["studies"] for r in rows}
    assert got == {
        ("ReferringPhysicianName", "GÓMEZ^MARÍA ELENA"): 2,
        ("InstitutionName", "CLÍNICA EL ÁVILA"): 1,
    }
    page = staff.get("/staff/unmatched?lang=es").get_data(as_text=True)
    assert "GÓMEZ^MARÍA ELENA" in page and "Médico que refiere" in page
    assert "MATCHED^DOCTOR" not in page and "VIEJO^DOCTOR" not in page
    assert app.test_client().get("/staff/api/unmatched-tags").status_code == 401


def test_a_command_prints_the_unmatched_values_of_the_last_30_days(app, unmatched):
    result = app.test_cli_runner().invoke(args=["unmatched-tags"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        "ReferringPhysicianName" in s and "GÓMEZ^MARÍA ELENA" in s and "2" in s for s in lines
    )
    assert any("InstitutionName" in s and "CLÍNICA EL ÁVILA" in s for s in lines)
    assert "VIEJO^DOCTOR" not in result.output and "MATCHED^DOCTOR" not in result.output
    assert "HOSPITAL UNIVERSITARIO" not in result.output
