"""Tag rules and shares in-process: the rules file, rule logins, what they
see through the API and the decision function, and patient shares."""

import datetime

import pytest

from authsvc import ingest
from authsvc.cli import ensure_admin, set_rule_password
from authsvc.decision import decide_uri
from authsvc.models import RuleLogin, Share
from tests.helpers import fake_study, write_rules

REF, PERF, READ, INST = "0008,0090", "0008,1050", "0008,1060", "0008,0080"


@pytest.fixture
def studies(app):
    made = {
        "s1": fake_study(
            "P1", "1", values={REF: ["GÓMEZ^MARÍA"], INST: ["HOSPITAL UNIVERSITARIO"]}
        ),
        "s2": fake_study("P1", "2", values={PERF: ["NUNEZ^JOSE", "PEREZ^JUAN"]}),
        "s3": fake_study("P2", "3", values={READ: ["PEREZ^JUANA", "Gomez^Maria^Elena"]}),
        "s4": fake_study("P3", "4", values={}),
    }
    pw = {}
    for data in made.values():
        pw[data["patient"]["PatientID"]] = ingest.store_study(
            data["study_orthanc_id"], data
        ) or pw.get(data["patient"]["PatientID"])
    return {
        "data": made,
        "passwords": pw,
        "ids": {k: d["study_orthanc_id"] for k, d in made.items()},
    }


LOGINS = [
    {
        "login": "dra-gomez",
        "rules": [
            {"tag": "ReferringPhysicianName", "value": "gomez^maria"},
            {"tag": "(0008,1060)", "value": "GOMEZ^MARIA*"},
        ],
    },
    {"login": "dr-perez", "rules": [{"tag": "PerformingPhysicianName", "value": "PEREZ^JUAN"}]},
    {
        "login": "dr-perez-reading",
        "rules": [{"tag": "NameOfPhysiciansReadingStudy", "value": "PEREZ^JUAN"}],
    },
    {
        "login": "hu",
        "description": "Hospital Universitario",
        "rules": [{"tag": "InstitutionName", "value": "Hospital Universitario"}],
    },
]
EXPECTED = {"dra-gomez": {"s1", "s3"}, "dr-perez": {"s2"}, "dr-perez-reading": set(), "hu": {"s1"}}


def seen_by_api(client, studies):
    listed = {s["orthanc_id"] for s in client.get("/api/studies").json["studies"]}
    return {k for k, oid in studies["ids"].items() if oid in listed}


def test_each_rule_login_sees_exactly_its_studies(app, client, studies):
    pws = write_rules(app, LOGINS, [entry["login"] for entry in LOGINS])
    for name, expected in EXPECTED.items():
        c = app.test_client()
        r = c.post("/api/login", json={"login": name, "password": pws[name]})
        assert r.status_code == 200, r.json
        assert r.json["kind"] == "rule"
        assert seen_by_api(c, studies) == expected, name
        principal = app.extensions["authsvc"].sessions.resolve(
            r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
        )
        for key, oid in studies["ids"].items():
            decision = decide_uri(principal, "GET", f"/studies/{oid}/archive")
            assert decision.granted == (key in expected), (name, key)
        # Never the patient level (it lists all the patient's studies), never a write.
        patient_oid = studies["data"]["s1"]["patient_orthanc_id"]
        assert not decide_uri(principal, "GET", f"/patients/{patient_oid}").granted
        assert not decide_uri(principal, "DELETE", f"/studies/{studies['ids']['s1']}").granted
        assert not decide_uri(principal, "GET", "/studies").granted


def test_new_study_is_matched_at_ingest(app, client, studies):
    pws = write_rules(app, LOGINS, ["dr-perez"])
    client.post("/api/login", json={"login": "dr-perez", "password": pws["dr-perez"]})
    client.get("/api/session")
    later = fake_study("P9", "9", values={PERF: ["Pérez^Juan^^"]})
    ingest.store_study(later["study_orthanc_id"], later)
    listed = {s["orthanc_id"] for s in client.get("/api/studies").json["studies"]}
    assert later["study_orthanc_id"] in listed


def test_rule_change_and_removal_apply_at_once(app, client, studies):
    pws = write_rules(app, LOGINS, ["dr-perez", "hu"])
    assert client.post("/api/login", json={"login": "hu", "password": pws["hu"]}).status_code == 200
    assert seen_by_api(client, studies) == {"s1"}
    changed = [
        dict(LOGINS[3], rules=[{"tag": "InstitutionName", "value": "nothing here"}]),
        LOGINS[1],
    ]
    write_rules(app, changed)
    assert seen_by_api(client, studies) == set()
    write_rules(app, [LOGINS[1]])  # "hu" removed: its session ends
    assert client.get("/api/studies").status_code == 401
    assert RuleLogin.get_or_none(RuleLogin.name == "hu") is None


def test_broken_rules_file_disables_every_rule_login(app, client, studies):
    pws = write_rules(app, LOGINS, ["dr-perez"])
    assert (
        client.post(
            "/api/login", json={"login": "dr-perez", "password": pws["dr-perez"]}
        ).status_code
        == 200
    )
    with open(app.config["RULES_FILE"], "a") as fh:
        fh.write("}")
    assert client.get("/api/studies").status_code == 401
    admin = app.test_client()
    ensure_admin("admin", "admin password long enough")
    admin.post("/api/login", json={"username": "admin", "password": "admin password long enough"})
    report = admin.get("/api/rules").json
    assert "not valid JSON" in report["error"]
    assert all(not login["active"] for login in report["logins"])
    write_rules(app, LOGINS)  # fixed: back at once
    assert (
        client.post(
            "/api/login", json={"login": "dr-perez", "password": pws["dr-perez"]}
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    "logins,message",
    [
        ([{"login": "Bad Name", "rules": [{"tag": "InstitutionName", "value": "x"}]}], "login"),
        ([{"login": "a", "rules": []}], "rules"),
        ([{"login": "a", "rules": [{"tag": "NoSuchTag", "value": "x"}]}], "not a DICOM keyword"),
        ([{"login": "a", "rules": [{"tag": "InstitutionName", "value": "*"}]}], "wildcards"),
        (
            [
                {"login": "a", "rules": [{"tag": "InstitutionName", "value": "x"}]},
                {"login": "a", "rules": [{"tag": "InstitutionName", "value": "y"}]},
            ],
            "twice",
        ),
    ],
)
def test_invalid_rules_are_reported_clearly(app, studies, logins, message):
    write_rules(app, logins)
    ensure_admin("admin", "admin password long enough")
    admin = app.test_client()
    admin.post("/api/login", json={"username": "admin", "password": "admin password long enough"})
    assert message in admin.get("/api/rules").json["error"]


def test_rule_password_is_only_hashed_and_replaces_the_old(app, studies):
    first = write_rules(app, LOGINS, ["hu"])["hu"]
    stored = open(app.config["RULE_PASSWORDS_FILE"]).read()
    assert first.replace("-", "") not in stored and "$argon2id$" in stored
    c = app.test_client()
    assert c.post("/api/login", json={"login": "hu", "password": first}).status_code == 200
    second = set_rule_password(app.config["RULE_PASSWORDS_FILE"], app.config["RULES_FILE"], "hu")
    assert c.get("/api/session").status_code == 401  # sessions of the old password end
    assert (
        app.test_client().post("/api/login", json={"login": "hu", "password": first}).status_code
        == 401
    )
    assert (
        app.test_client().post("/api/login", json={"login": "hu", "password": second}).status_code
        == 200
    )


def test_login_without_password_cannot_log_in(app, studies):
    write_rules(app, LOGINS)
    assert (
        app.test_client().post("/api/login", json={"login": "hu", "password": "x" * 12}).status_code
        == 401
    )


def test_staff_see_which_rules_match_each_study(app, studies):
    write_rules(app, LOGINS)
    ensure_admin("admin", "admin password long enough")
    admin = app.test_client()
    admin.post("/api/login", json={"username": "admin", "password": "admin password long enough"})
    admin.get("/api/session")
    rows = {s["orthanc_id"]: s["rule_logins"] for s in admin.get("/api/studies").json["studies"]}
    assert rows[studies["ids"]["s1"]] == ["dra-gomez", "hu"]
    assert rows[studies["ids"]["s4"]] == []
    counts = {entry["login"]: entry["studies"] for entry in admin.get("/api/rules").json["logins"]}
    assert counts == {k: len(v) for k, v in EXPECTED.items()}


def test_shipped_examples_are_valid_once_enabled(app):
    from pathlib import Path

    from authsvc.rules import parse_rules

    text = (Path(__file__).resolve().parents[1] / "deploy" / "rules.example.json").read_text()
    assert parse_rules(text) == []
    specs = parse_rules(text.replace('"enabled": false', '"enabled": true'))
    tags = {tag for spec in specs for tag, _ in spec.rules}
    assert tags == {"0008,0080", "0008,0090", "0008,1050", "0008,1060", "0010,2299"}


# -- shares --------------------------------------------------------------------


def patient_client(app, studies, pid="P1"):
    c = app.test_client()
    assert (
        c.post(
            "/api/login", json={"patient_id": pid, "password": studies["passwords"][pid]}
        ).status_code
        == 200
    )
    return c


def share_secret(share):
    return share["url"].split("#share=", 1)[1]


def test_share_one_study_used_then_revoked(app, studies):
    patient = patient_client(app, studies)
    r = patient.post("/api/shares", json={"study": studies["ids"]["s1"]})
    assert r.status_code == 201
    share = r.json
    assert share["url"].startswith(app.config["PUBLIC_URL"] + "/#share=")
    assert share["qr_svg"].startswith("<?xml") and "<svg" in share["qr_svg"]
    expires = datetime.datetime.fromisoformat(share["expires_at"].rstrip("Z"))
    assert (
        datetime.timedelta(days=6, hours=23)
        < expires - datetime.datetime.utcnow()
        <= datetime.timedelta(days=7)
    )
    holder = app.test_client()
    r = holder.post("/api/login", json={"share": share_secret(share)})
    assert r.status_code == 200 and r.json["kind"] == "share"
    assert seen_by_api(holder, studies) == {"s1"}  # not s2, the same patient's other study
    principal = app.extensions["authsvc"].sessions.resolve(
        r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    )
    assert decide_uri(principal, "GET", f"/studies/{studies['ids']['s1']}").granted
    assert not decide_uri(principal, "GET", f"/studies/{studies['ids']['s2']}").granted
    assert not decide_uri(
        principal, "GET", f"/patients/{studies['data']['s1']['patient_orthanc_id']}"
    ).granted
    assert not decide_uri(principal, "POST", f"/studies/{studies['ids']['s1']}/modify").granted
    assert holder.post("/api/shares", json={}).status_code == 403  # a share cannot re-share
    listed = patient.get("/api/shares").json["shares"]
    assert [s["id"] for s in listed] == [share["id"]] and "url" not in listed[0]
    assert patient.post(f"/api/shares/{share['id']}/revoke", json={}).status_code == 200
    assert holder.get("/api/studies").status_code == 401
    assert (
        app.test_client().post("/api/login", json={"share": share_secret(share)}).status_code == 401
    )
    assert patient.get("/api/shares").json["shares"] == []


def test_share_of_all_studies_and_expiry(app, studies):
    patient = patient_client(app, studies)
    share = patient.post("/api/shares", json={"days": 1}).json
    holder = app.test_client()
    holder.post("/api/login", json={"share": share_secret(share)})
    assert seen_by_api(holder, studies) == {"s1", "s2"}
    Share.update(expires_at=datetime.datetime.utcnow() - datetime.timedelta(seconds=1)).execute()
    assert holder.get("/api/studies").status_code == 401
    assert (
        app.test_client().post("/api/login", json={"share": share_secret(share)}).status_code == 401
    )


@pytest.mark.parametrize(
    "body,status",
    [
        ({"days": 0}, 400),
        ({"days": 31}, 400),
        ({"days": "7"}, 400),
        ({"days": True}, 400),
        ({"study": "00000000-00000000-00000000-00000000-00000000"}, 404),
    ],
)
def test_share_limits(app, studies, body, status):
    assert patient_client(app, studies).post("/api/shares", json=body).status_code == status


def test_patient_cannot_share_or_revoke_someone_elses(app, studies):
    other_study = studies["ids"]["s3"]  # P2's
    p1 = patient_client(app, studies)
    assert p1.post("/api/shares", json={"study": other_study}).status_code == 404
    share = patient_client(app, studies, "P2").post("/api/shares", json={}).json
    assert p1.post(f"/api/shares/{share['id']}/revoke", json={}).status_code == 404
    assert Share.get_by_id(share["id"]).revoked_at is None


def test_staff_list_and_revoke_shares(app, studies):
    share = patient_client(app, studies).post("/api/shares", json={}).json
    ensure_admin("admin", "admin password long enough")
    admin = app.test_client()
    admin.post("/api/login", json={"username": "admin", "password": "admin password long enough"})
    assert [s["id"] for s in admin.get("/api/shares").json["shares"]] == [share["id"]]
    assert admin.post(f"/api/shares/{share['id']}/revoke", json={}).status_code == 200
    assert admin.get("/api/shares").json["shares"] == []
    assert admin.get("/api/shares?all=1").json["shares"][0]["revoked"] is True


def test_bad_share_secrets(app, studies):
    for secret in ["", "x", "y" * 32, "z" * 200]:
        r = app.test_client().post("/api/login", json={"share": secret})
        assert r.status_code in (400, 401)


def test_decisions_never_wait_for_a_rules_sync(app, client, studies):
    """A rules file saved while Orthanc asks: the Lua filter's question is
    answered with the rules applied so far, and the background worker is woken
    to apply the new ones (a sync can take seconds on a big archive)."""
    import threading

    pws = write_rules(app, LOGINS, ["hu"])
    r = client.post("/api/login", json={"login": "hu", "password": pws["hu"]})
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    wake = threading.Event()
    app.extensions["authsvc"].ingest_worker.wake = wake
    write_rules(app, [dict(LOGINS[3], rules=[{"tag": "InstitutionName", "value": "elsewhere"}])])
    ask = {"method": "GET", "uri": f"/studies/{studies['ids']['s1']}", "token": token}
    r = app.test_client().post(
        "/internal/authorize", json=ask, headers={"X-Authsvc-Secret": "i" * 40}
    )
    assert r.json["granted"] is True  # the old rules, not yet applied
    assert wake.is_set()
    app.extensions["authsvc"].rules.check()  # what the woken worker does
    r = app.test_client().post(
        "/internal/authorize", json=ask, headers={"X-Authsvc-Secret": "i" * 40}
    )
    assert r.json["granted"] is False
