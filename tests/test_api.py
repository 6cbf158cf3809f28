"""The JSON API in-process (Flask's test client, a real SQLite file, no Orthanc)."""

import datetime
import json

import pytest

from authsvc import create_app, ingest, passwords
from authsvc.cli import ensure_admin
from authsvc.config import ConfigError
from authsvc.models import Session, StaffUser
from tests.helpers import fake_study

STAFF_PASSWORD = "a staff password, long enough"


@pytest.fixture
def patient(app):
    data = fake_study("P-1", "1", name="NÚÑEZ^JOSÉ")
    password = ingest.store_study(data["study_orthanc_id"], data)
    other = fake_study("P-2", "2")
    ingest.store_study(other["study_orthanc_id"], other)
    return {
        "id": "P-1",
        "password": password,
        "study": data["study_orthanc_id"],
        "other_study": other["study_orthanc_id"],
    }


@pytest.fixture
def staff(app):
    ensure_admin("admin", STAFF_PASSWORD)
    StaffUser.create(
        username="rad",
        role="radiologist",
        password_hash=passwords.hash_password(STAFF_PASSWORD, generated=False),
    )


def login(client, **body):
    return client.post("/api/login", json=body)


def test_patient_login_sets_a_safe_cookie(client, patient):
    r = login(client, patient_id=patient["id"], password=patient["password"])
    assert r.status_code == 200
    assert r.json == {"kind": "patient", "patient_id": "P-1", "name": "NÚÑEZ^JOSÉ"}
    cookie = r.headers["Set-Cookie"]
    assert cookie.startswith("authsvc_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 256 bits, url-safe base64
    # Stored only as a keyed hash.
    assert not Session.select().where(Session.token_hash == token).exists()
    assert r.headers["Cache-Control"] == "no-store"


def test_secure_cookie_over_https(client, patient):
    r = client.post(
        "/api/login",
        json={"patient_id": "P-1", "password": patient["password"]},
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "Secure" in r.headers["Set-Cookie"]


@pytest.mark.parametrize(
    "body",
    [
        {"patient_id": "P-1", "password": "wrong-word-here"},
        {"patient_id": "NOPE", "password": "wrong-word-here"},
        {"username": "admin", "password": "wrong"},
        {"username": "nobody", "password": STAFF_PASSWORD},
    ],
)
def test_bad_logins_are_401_with_one_message(client, patient, staff, body):
    r = login(client, **body)
    assert r.status_code == 401
    assert r.json == {"error": "bad_credentials", "message": "Wrong ID or password."}
    assert "Set-Cookie" not in r.headers


@pytest.mark.parametrize(
    "kwargs,status",
    [
        (
            {
                "data": "patient_id=P-1&password=x",
                "content_type": "application/x-www-form-urlencoded",
            },
            415,
        ),
        ({"data": "[1]", "content_type": "application/json"}, 400),
        ({"data": "{", "content_type": "application/json"}, 400),
        ({"json": {"password": "x"}}, 400),
        ({"json": {"patient_id": 5, "password": "x"}}, 400),
        ({"json": {"patient_id": "P-1", "password": "x" * 300}}, 400),
        ({"json": {"patient_id": "P-1"}}, 400),
    ],
)
def test_malformed_logins_are_4xx(client, patient, kwargs, status):
    r = client.post("/api/login", **kwargs)
    assert r.status_code == status
    assert set(r.json) == {"error", "message"}


def test_patient_sees_only_own_studies(client, patient):
    login(client, patient_id="P-1", password=patient["password"])
    studies = client.get("/api/studies").json["studies"]
    assert [s["orthanc_id"] for s in studies] == [patient["study"]]
    assert "access_tags" not in studies[0]


def test_staff_see_all_and_search(client, patient, staff):
    login(client, username="admin", password=STAFF_PASSWORD)
    assert len(client.get("/api/studies").json["studies"]) == 2
    found = client.get("/api/studies?q=núñez").json["studies"]
    assert [s["patient_id"] for s in found] == ["P-1"]
    assert client.get("/api/studies?q=P-2").json["studies"][0]["patient_has_login"] is True
    assert client.get("/api/studies?limit=x").status_code == 400


def test_logout_ends_the_session_on_the_server(client, patient):
    r = login(client, patient_id="P-1", password=patient["password"])
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    assert client.post("/api/logout", json={}).status_code == 200
    assert client.get("/api/studies").status_code == 401
    replay = client.application.test_client()
    replay.set_cookie("authsvc_session", token)
    assert replay.get("/api/session").status_code == 401
    assert (
        replay.get("/api/session", headers={"Authorization": "Bearer " + token}).status_code == 401
    )


def test_bearer_token_for_scripts(client, patient):
    r = login(client, patient_id="P-1", password=patient["password"])
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    script = client.application.test_client()
    assert (
        script.get("/api/session", headers={"Authorization": "Bearer " + token}).json["kind"]
        == "patient"
    )


def test_idle_and_absolute_expiry(client, patient):
    login(client, patient_id="P-1", password=patient["password"])
    assert client.get("/api/session").status_code == 200
    now = datetime.datetime.utcnow()
    Session.update(last_seen=now - datetime.timedelta(minutes=31)).execute()
    assert client.get("/api/session").status_code == 401
    login(client, patient_id="P-1", password=patient["password"])
    Session.update(expires_at=now - datetime.timedelta(seconds=1)).where(~Session.ended).execute()
    assert client.get("/api/session").status_code == 401


def test_credentials_are_staff_only(client, patient, staff):
    assert client.post("/api/patients/P-1/credentials", json={}).status_code == 401
    login(client, patient_id="P-1", password=patient["password"])
    assert client.post("/api/patients/P-1/credentials", json={}).status_code == 403


def test_reissue_replaces_password_and_ends_sessions(app, client, patient, staff):
    holder = app.test_client()
    login(holder, patient_id="P-1", password=patient["password"])
    login(client, username="rad", password=STAFF_PASSWORD)
    r = client.post("/api/patients/P-1/credentials", json={})
    assert r.status_code == 200
    new = r.json["password"]
    assert holder.get("/api/session").status_code == 401
    assert (
        login(app.test_client(), patient_id="P-1", password=patient["password"]).status_code == 401
    )
    assert login(app.test_client(), patient_id="P-1", password=new).status_code == 200
    assert client.post("/api/patients/NOPE/credentials", json={}).status_code == 404
    assert client.post("/api/patients/P-1/credentials").status_code == 415


def test_internal_routes_need_the_secret(client, patient):
    body = {"method": "GET", "uri": "/system", "token": "x" * 43}
    assert client.post("/internal/authorize", json=body).status_code == 403
    assert (
        client.post(
            "/internal/authorize", json=body, headers={"X-Authsvc-Secret": "i" * 39}
        ).status_code
        == 403
    )
    assert client.post("/internal/stable-study", json={"id": patient["study"]}).status_code == 403


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"method": "GET"},
        {"method": "GET", "uri": 5, "token": "x"},
        {"method": "BREW", "uri": "/system", "token": "x" * 43},
        {"method": "GET", "uri": "/system", "token": ["x"]},
        {"method": "GET", "uri": "/" + "a" * 5000, "token": "x" * 43},
    ],
)
def test_authorize_denies_anything_odd(client, body):
    r = client.post("/internal/authorize", json=body, headers={"X-Authsvc-Secret": "i" * 40})
    assert r.status_code == 200
    assert r.json["granted"] is False and r.json["validity"] == 0 and r.json["keys"] == []


def test_authorize_grants_a_patient_their_study(client, patient):
    r = login(client, patient_id="P-1", password=patient["password"])
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    ask = {"method": "GET", "uri": f"/studies/{patient['study']}", "token": token}
    r = client.post("/internal/authorize", json=ask, headers={"X-Authsvc-Secret": "i" * 40})
    assert r.json["granted"] is True and r.json["validity"] > 0
    assert patient["study"] in r.json["keys"]
    ask["uri"] = f"/studies/{patient['other_study']}"
    r = client.post("/internal/authorize", json=ask, headers={"X-Authsvc-Secret": "i" * 40})
    assert r.json["granted"] is False


def test_stable_study_notification_is_queued(client, patient):
    r = client.post(
        "/internal/stable-study", json={"id": "not-an-id"}, headers={"X-Authsvc-Secret": "i" * 40}
    )
    assert r.status_code == 400
    r = client.post(
        "/internal/stable-study",
        json={"id": patient["study"]},
        headers={"X-Authsvc-Secret": "i" * 40},
    )
    assert r.status_code == 202


def test_unknown_route_and_method_are_json(client):
    assert client.get("/api/nope").status_code == 404
    assert client.get("/api/nope").json["error"] == "not_found"
    assert client.get("/api/login").status_code == 405


def test_service_refuses_to_start_without_secrets(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTHSVC_CONFIG", raising=False)
    secrets = tmp_path / "s.json"
    secrets.write_text(json.dumps({"secret_key": "short", "ingest_secret": "i" * 40}))
    with pytest.raises(ConfigError):
        create_app({"DATABASE_URL": "sqlite:///:memory:", "SECRETS_FILE": str(secrets)})
    with pytest.raises(ConfigError):
        create_app({"DATABASE_URL": "sqlite:///:memory:", "SECRETS_FILE": ""})


def test_first_admin_once(app):
    generated = ensure_admin("admin")
    assert generated and StaffUser.select().count() == 1
    assert passwords.verify(StaffUser.get().password_hash, generated, generated=False)
    assert ensure_admin("admin") is None


@pytest.mark.parametrize(
    "method,path,body",
    [
        ("POST", "/api/login", {"patient_id": "P\x00", "password": "x" * 12}),
        ("POST", "/api/patients/P-1%00/credentials", {}),
        ("GET", "/api/studies?q=%00", None),
        ("GET", "/staff/slips/%00", None),
        ("POST", "/staff/api/patients/%00/printed", {}),
    ],
)
def test_nul_characters_are_bad_input_not_a_crash(client, patient, method, path, body):
    # PostgreSQL refuses NUL in text: found by fuzzing on PostgreSQL, where
    # it used to end in a 500.
    r = client.open(path, method=method, json=body)
    assert r.status_code == 400
