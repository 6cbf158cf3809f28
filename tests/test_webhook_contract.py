"""The Authorization plugin's webhook against every body the real plugin sent.

`tests/fixtures/authorization-plugin-requests.jsonl` holds every kind of request
plugins 0.4.1 and 0.11.4 sent to a real Orthanc's webhook (one JSON object a
line: plugin version, endpoint, chunked or not, headers it forwarded, body
verbatim; tokens and IDs replaced by the ones below). Each body is replayed here,
its token replaced by a real session token of the principal under test, through
three transports: the Flask test client (Content-Length), Werkzeug's server in
a thread (Transfer-Encoding: chunked, no Content-Length), and a real gunicorn
(both), because the test client does not decode chunked bodies the way a
server does. The resources the bodies name (PatientID "PID-1", study
"1.2.3.4"...) are recorded for one patient, who must get exactly them; a
second patient, no token and an unknown token get nothing; staff get what the
Lua filter gives them.

A rule login and a share are asked questions built like these bodies
(test_rule_login_and_share_get_their_study_never_the_patient_level): both are
refused the patient level and get exactly their study below it.
"""

import base64
import http.client
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from authsvc import gunicorn_conf, ingest
from authsvc.config import defaults
from authsvc.models import Patient, StaffUser
from tests.helpers import fake_study, free_port

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "authorization-plugin-requests.jsonl"
WEBHOOK_SECRET = "w" * 40
AUTH = {"Authorization": "Basic " + base64.b64encode(f"orthanc:{WEBHOOK_SECRET}".encode()).decode()}
PRINCIPALS = ("patient", "other_patient", "admin", "radiologist", "no_token", "unknown")


def load_fixture():
    if not FIXTURE.is_file():
        pytest.fail(f"the plugin's captured requests are missing: {FIXTURE}", pytrace=False)
    lines = [
        json.loads(line)
        for line in FIXTURE.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    return list(enumerate(lines, start=1))


@pytest.fixture(scope="module")
def captured():
    return load_fixture()


# -- the world the bodies talk about --------------------------------------------


def named_resources(lines):
    """The one (orthanc-id, dicom-uid) pair the bodies name at each level."""
    found = {}
    for _, line in lines:
        body = line["body"]
        if body.get("level") in ("patient", "study", "series", "instance"):
            found.setdefault(body["level"], set()).add((body["orthanc-id"], body["dicom-uid"]))
    assert all(len(pairs) == 1 for pairs in found.values()), found
    return {level: pairs.pop() for level, pairs in found.items()}


@pytest.fixture
def world(app, captured):
    """The bodies' resources recorded as one patient's study, a second patient,
    two staff, and a session token for each principal (None: no token)."""
    named = named_resources(captured)
    (patient_oid, patient_id), (study_oid, study_uid) = named["patient"], named["study"]
    data = fake_study(patient_id, "7", series=1, per_series=1)
    data["patient_orthanc_id"] = patient_oid
    data["tags"]["StudyInstanceUID"] = study_uid
    data["series"], data["instances"] = [named["series"]], [named["instance"]]
    ingest.store_study(study_oid, data)
    other = fake_study("PID-2", "2")
    ingest.store_study(other["study_orthanc_id"], other)

    store = app.extensions["authsvc"].sessions
    app.extensions["authsvc"].secrets["webhook_secret"] = WEBHOOK_SECRET
    tokens = {
        "patient": store.start(patient=Patient.get(Patient.patient_id == patient_id)),
        "other_patient": store.start(patient=Patient.get(Patient.patient_id == "PID-2")),
        "admin": store.start(
            staff=StaffUser.create(username="admin", role="admin", password_hash="x")
        ),
        "radiologist": store.start(
            staff=StaffUser.create(username="rad", role="radiologist", password_hash="x")
        ),
        "no_token": None,
        "unknown": secrets.token_urlsafe(32),  # well-formed, never issued
    }
    return {"tokens": tokens, "named": named, "patient_id": patient_id}


# -- what the plugin sends, and what it must get back ----------------------------


def is_basic(body):
    """A client's own basic auth, which the plugin passes on as a token when
    `Authorization` is one of its token headers: never a session."""
    return str(body.get("token-value", "")).startswith("Basic ")


def request_of(line, token):
    """(HTTP method, path, body bytes, headers) of a captured line, its token
    replaced by `token`, or removed when the principal has none."""
    body, forwarded = dict(line["body"]), dict(line["forwarded_headers"])
    if body.get("token-value") and not is_basic(body):
        prefix = "Bearer " if body["token-value"].startswith("Bearer ") else ""
        if token is None:
            body.pop("token-key"), body.pop("token-value")
            forwarded = {}
        else:
            body["token-value"] = prefix + token
            forwarded = {k: prefix + token for k in forwarded}
    # The plugin forwards a header token too, except Authorization once it logs
    # in with WebServiceUsername/Password itself (our basic auth).
    headers = {k: v for k, v in forwarded.items() if k.lower() != "authorization"}
    headers.update(AUTH, **{"Content-Type": "application/json"})
    endpoint = line["endpoint"]
    method = (
        "PUT"
        if endpoint.startswith("/tokens/")
        and endpoint not in ("/tokens/validate", "/tokens/decode")
        else "POST"
    )
    return method, "/authz" + endpoint, json.dumps(body).encode(), headers


def granted_to(principal, body):
    if (
        not body.get("token-value")
        or is_basic(body)
        or principal in ("other_patient", "no_token", "unknown")
    ):
        return False
    if principal == "admin":
        return True
    if principal == "radiologist":
        # Every read, and the searches (which change nothing).
        return body["method"] == "get" or (
            body["level"] == "system"
            and body["method"] == "post"
            and body.get("uri") in ("/tools/find", "/tools/lookup")
        )
    # The patient: every level of their own study, reads only; no system route.
    return body["level"] != "system" and body["method"] == "get"


def profile_of(principal, body):
    if not body.get("token-value") or is_basic(body) or principal in ("no_token", "unknown"):
        return {"name": "anonymous", "permissions": [], "authorized-labels": ["*"]}
    if principal == "admin":
        return {"name": "admin", "permissions": ["all"], "authorized-labels": ["*"]}
    if principal == "radiologist":
        return {"name": "rad", "permissions": ["view"], "authorized-labels": ["*"]}
    # Every label, no permission: labels grant nothing in plugin 0.11.4
    # before a permission matched (tests/test_docker_permissions.py).
    return {"name": "patient", "permissions": [], "authorized-labels": ["*"]}


def expected(principal, line, validity):
    """(status, answer) the webhook owes this principal for this captured line."""
    endpoint, body = line["endpoint"], line["body"]
    if endpoint in ("/", "/tokens/validate"):
        return 200, {"granted": granted_to(principal, body), "validity": validity}
    if endpoint == "/user/get-profile":
        return 200, dict(profile_of(principal, body), validity=validity)
    # Token decoding and creation: no plugin tokens are issued, but the answer
    # is a 200 the plugin relays (on an error status it drops the client's
    # connection): an invalid token naming nothing, an empty token.
    if endpoint == "/tokens/decode":
        return 200, {"token-type": "", "error-code": "invalid", "redirect-url": "", "resources": []}
    return 200, {"token": "", "url": None}


def replay(send, lines, principal, token, validity):
    """Every captured line through `send`; returns the mismatches, readable."""
    wrong = []
    for number, line in lines:
        status, answer = send(*request_of(line, token))
        if (status, answer) != expected(principal, line, validity):
            wrong.append(
                f"line {number} ({line['plugin_version']} {line['endpoint']} "
                f"{line['body'].get('level', '')}): got {status} {answer}, "
                f"expected {expected(principal, line, validity)}"
            )
    return wrong


# -- transports -------------------------------------------------------------------


def client_sender(client):
    def send(method, path, data, headers):
        r = client.open(path, method=method, data=data, headers=headers)
        return r.status_code, r.get_json()

    return send


def http_sender(port, chunked):
    def send(method, path, data, headers):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            if chunked:
                # Small chunks: the body must be put together from many of them.
                pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
                conn.request(
                    method,
                    path,
                    body=iter(pieces),
                    encode_chunked=True,
                    headers=dict(headers, **{"Transfer-Encoding": "chunked"}),
                )
            else:
                conn.request(method, path, body=data, headers=headers)
            r = conn.getresponse()
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    return send


@pytest.fixture
def werkzeug_port(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(5)


def validity_of(app):
    return min(int(app.config["DECISION_CACHE_SECONDS"]), 10)


# -- the contract -------------------------------------------------------------------


def test_fixture_covers_what_the_facts_describe(captured):
    lines = [line for _, line in captured]
    assert len(lines) == 81
    assert {line["plugin_version"] for line in lines} == {"0.4.1", "0.11.4"}
    assert {line["transfer"] for line in lines} == {"chunked", "content-length"}
    bodies = [line["body"] for line in lines]
    assert any("identifier" in b for b in bodies) and any("server-id" in b for b in bodies)
    assert any(b.get("level") == "system" and "uri" in b for b in bodies)
    assert any(str(b.get("token-value", "")).startswith("Bearer ") for b in bodies)
    assert any("level" in b and "token-value" not in b for b in bodies)
    # What 0.11.4 sends with deploy/docker/orthanc.json: system-level questions
    # on /tokens/validate, with a token, without one, with a Bearer token and
    # with a client's own basic auth, and a study-level DELETE.
    validate = [line["body"] for line in lines if line["endpoint"] == "/tokens/validate"]
    assert any(b.get("level") == "system" and "token-value" not in b for b in validate)
    assert any(
        b.get("level") == "system" and str(b.get("token-value")).startswith("Bearer ")
        for b in validate
    )
    assert any(is_basic(b) for b in validate)
    assert any(b.get("method") == "delete" for b in validate)
    # With its user profile URL too (lines 71-81, Orthanc 1.10.1): the profile
    # of a token, of a Bearer token and of no token (empty key and value), then
    # the validation, "server-id" null without "WebServiceIdentifier".
    profiles = [line["body"] for line in lines[70:] if line["endpoint"] == "/user/get-profile"]
    assert {b["token-key"] for b in profiles} == {"token", "Authorization", ""}
    assert all(b["server-id"] is None for _, line in captured[70:] for b in [line["body"]])
    # Orthanc 1.12+ names the resource's labels.
    assert any(b.get("labels") for b in bodies)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_captured_body_with_content_length(app, client, world, captured, principal):
    wrong = replay(
        client_sender(client), captured, principal, world["tokens"][principal], validity_of(app)
    )
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_every_captured_body_chunked(app, world, captured, werkzeug_port, principal):
    wrong = replay(
        http_sender(werkzeug_port, chunked=True),
        captured,
        principal,
        world["tokens"][principal],
        validity_of(app),
    )
    assert not wrong, "\n".join(wrong)


@pytest.fixture
def gunicorn_port(app, world, tmp_path):
    """The service under a real gunicorn, on the test's database and settings."""
    secrets_file = tmp_path / "gunicorn-secrets.json"
    secrets_file.write_text(json.dumps(app.extensions["authsvc"].secrets))
    config = {key: app.config[key] for key in defaults()}
    config["SECRETS_FILE"] = str(secrets_file)
    config_file = tmp_path / "gunicorn-authsvc.json"
    config_file.write_text(json.dumps(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSVC_")}
    env["AUTHSVC_CONFIG"] = str(config_file)
    port = free_port()
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            # The service's own worker class (gunicorn_conf.py).
            "--worker-class",
            gunicorn_conf.worker_class,
            "--threads",
            str(gunicorn_conf.threads),
            "authsvc:create_app()",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                http_sender(port, chunked=False)("POST", "/authz/", b"{}", {})
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        "gunicorn did not start:\n"
                        + (tmp_path / "gunicorn.log").read_text(errors="replace")
                    )
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.mark.stack
def test_every_captured_body_under_gunicorn(app, world, captured, gunicorn_port):
    """gunicorn decodes chunked bodies itself and says so (wsgi.input_terminated):
    every body, chunked and with Content-Length, for every principal."""
    wrong = []
    for chunked in (True, False):
        send = http_sender(gunicorn_port, chunked=chunked)
        for principal in PRINCIPALS:
            wrong += [
                f"{principal}, {'chunked' if chunked else 'content-length'}: {w}"
                for w in replay(
                    send, captured, principal, world["tokens"][principal], validity_of(app)
                )
            ]
    assert not wrong, "\n".join(wrong)


# -- protocol details the fixture does not pin down ----------------------------------


def question(world, level, **fields):
    named = world["named"]
    body = {"level": level, "method": "get", "server-id": None}
    if level == "system":
        body["uri"] = "/system"
    else:
        body["orthanc-id"], body["dicom-uid"] = named[level]
    body.update(fields)
    return body


def ask(client, body, path="/authz/", headers=AUTH):
    return client.post(
        path, data=json.dumps(body), headers=headers, content_type="application/json"
    )


def test_legacy_url_answers_without_its_trailing_slash(client, world):
    body = question(
        world, "study", **{"token-key": "token", "token-value": world["tokens"]["patient"]}
    )
    assert ask(client, body, path="/authz").json["granted"] is True


@pytest.mark.parametrize(
    "headers,status",
    [
        ({}, 401),
        ({"Authorization": "Basic " + base64.b64encode(b"orthanc:wrong").decode()}, 401),
        ({"Authorization": "Bearer " + WEBHOOK_SECRET}, 401),
    ],
)
def test_webhook_needs_its_secret(client, world, headers, status):
    body = question(
        world, "study", **{"token-key": "token", "token-value": world["tokens"]["admin"]}
    )
    for path in ("/authz/", "/authz/tokens/validate", "/authz/user/get-profile"):
        r = ask(client, body, path=path, headers=headers)
        assert r.status_code == status and r.json["error"] == "bad_credentials"


def test_credentials_accepted_once_are_still_checked(app, client, world):
    """The webhook remembers the last header it accepted (the plugin sends
    the same one each time): another header, or the same after the secret
    changed, is checked again and refused."""
    body = question(
        world, "study", **{"token-key": "token", "token-value": world["tokens"]["admin"]}
    )
    assert ask(client, body).json["granted"] is True
    wrong = {"Authorization": "Basic " + base64.b64encode(b"orthanc:wrong").decode()}
    assert ask(client, body, headers=wrong).status_code == 401
    assert ask(client, body, headers={}).status_code == 401
    assert ask(client, body).json["granted"] is True
    services = app.extensions["authsvc"]
    services.secrets["webhook_secret"] = "n" * 40
    assert ask(client, body).status_code == 401
    fresh = {"Authorization": "Basic " + base64.b64encode(b"orthanc:" + b"n" * 40).decode()}
    assert ask(client, body, headers=fresh).json["granted"] is True
    assert ask(client, body).status_code == 401


@pytest.mark.parametrize("secret", [None, "", "short-secret"])
def test_without_a_secret_every_call_is_refused(app, client, world, secret):
    services = app.extensions["authsvc"]
    if secret is None:
        services.secrets.pop("webhook_secret")
    else:
        services.secrets["webhook_secret"] = secret
    body = question(
        world, "study", **{"token-key": "token", "token-value": world["tokens"]["admin"]}
    )
    for headers in (
        AUTH,
        {"Authorization": "Basic " + base64.b64encode(f"orthanc:{secret or ''}".encode()).decode()},
    ):
        r = ask(client, body, headers=headers)
        assert r.status_code == 403 and r.json["error"] == "webhook_disabled"


@pytest.mark.parametrize(
    "data,status",
    [
        (b"", 400),
        (b"{", 400),
        (b"[1]", 400),
        (b"\xff\xfe", 400),
        (b'"x"', 400),
        (json.dumps({"method": "get"}).encode(), 400),
        (json.dumps({"level": "study", "method": "get"}).encode(), 400),
        (json.dumps({"level": "study", "method": "patch", "orthanc-id": "x"}).encode(), 400),
        (json.dumps({"level": "galaxy", "method": "get", "orthanc-id": "x"}).encode(), 400),
        (json.dumps({"level": "system", "method": "get"}).encode(), 400),
        (json.dumps({"level": "system", "method": "get", "uri": "system"}).encode(), 400),
        (json.dumps({"level": "system", "method": "get", "uri": 5}).encode(), 400),
        (
            json.dumps(
                {"level": "system", "method": "get", "uri": "/x", "token-value": 12}
            ).encode(),
            400,
        ),
        (
            json.dumps(
                {"level": "system", "method": "get", "uri": "/x", "server-id": ["a"]}
            ).encode(),
            400,
        ),
        (
            json.dumps({"level": "system", "method": "get", "uri": "/x", "labels": "a"}).encode(),
            400,
        ),
        (json.dumps({"level": "system", "method": "get", "uri": "/" + "x" * 70000}).encode(), 413),
    ],
)
def test_malformed_bodies_are_4xx_json(client, world, data, status):
    r = client.post("/authz/", data=data, headers=AUTH, content_type="application/json")
    assert r.status_code == status
    assert set(r.json) == {"error", "message"}


def test_malformed_chunked_bodies_are_4xx_json(world, werkzeug_port):
    send = http_sender(werkzeug_port, chunked=True)
    status, answer = send("POST", "/authz/", b"{not json", dict(AUTH))
    assert status == 400 and answer["error"] == "bad_json"
    status, answer = send("POST", "/authz/", b"{" + b" " * 70000 + b"}", dict(AUTH))
    assert status == 413 and answer["error"] == "too_large"
    status, answer = send("POST", "/authz/user/get-profile", b"[]", dict(AUTH))
    assert status == 400 and answer["error"] == "bad_json"


def test_a_token_only_in_a_forwarded_header_grants_nothing(app, client, world):
    """The body is the question; a header the plugin forwards is not read."""
    r = client.post(
        "/authz/",
        data=json.dumps(question(world, "study")),
        headers=dict(AUTH, token=world["tokens"]["patient"]),
        content_type="application/json",
    )
    assert r.json == {"granted": False, "validity": validity_of(app)}


def test_bearer_prefix_and_any_token_key(client, world):
    token = world["tokens"]["patient"]
    for key, value in (
        ("token", token),
        ("Authorization", "Bearer " + token),
        ("authorization", "bearer  " + token),
        ("access_token", token),
    ):
        body = question(world, "instance", **{"token-key": key, "token-value": value})
        assert ask(client, body).json["granted"] is True, key


def test_each_level_checks_both_names_of_the_resource(client, world):
    """A body pairing the right Orthanc ID with another UID (or PatientID) is
    not about the patient's resource: refused."""
    token = world["tokens"]["patient"]
    for level in ("patient", "study", "series", "instance"):
        good = question(world, level, **{"token-key": "token", "token-value": token})
        assert ask(client, good).json["granted"] is True, level
        assert ask(client, dict(good, **{"dicom-uid": "9.9.9"})).json["granted"] is False, level
        # Without a UID, the Orthanc ID alone decides: for the owner only.
        assert ask(client, dict(good, **{"dicom-uid": ""})).json["granted"] is True, level
        other = dict(good, **{"dicom-uid": "", "token-value": world["tokens"]["other_patient"]})
        assert ask(client, other).json["granted"] is False, level


def test_patients_only_read(client, world):
    token = world["tokens"]["patient"]
    for level in ("patient", "study", "series", "instance"):
        for method in ("post", "put", "delete"):
            body = question(
                world, level, method=method, **{"token-key": "token", "token-value": token}
            )
            assert ask(client, body).json["granted"] is False, (level, method)


def test_system_level_follows_the_lua_filter_rules(client, world):
    named, tokens = world["named"], world["tokens"]
    study_path = f"/studies/{named['study'][0]}/archive"
    cases = [
        ("patient", "get", study_path, True),
        ("other_patient", "get", study_path, False),
        ("patient", "get", "/patients", False),
        ("patient", "get", "/tools/find", False),
        ("patient", "post", "/tools/find", False),
        ("patient", "get", "/changes", False),
        ("radiologist", "get", "/changes", True),
        ("radiologist", "post", "/tools/find", True),
        ("radiologist", "post", "/tools/lookup", True),
        ("radiologist", "post", "/tools/create-archive", False),
        ("radiologist", "post", "/tools/reset", False),
        ("admin", "delete", "/patients/" + named["patient"][0], True),
    ]
    for principal, method, uri, granted in cases:
        body = question(
            world,
            "system",
            method=method,
            uri=uri,
            **{"token-key": "token", "token-value": tokens[principal]},
        )
        assert ask(client, body).json["granted"] is granted, (principal, method, uri)


def test_logout_is_refused_at_once_and_validity_stays_short(app, client, world):
    token = world["tokens"]["patient"]
    body = question(world, "study", **{"token-key": "token", "token-value": token})
    assert ask(client, body).json == {"granted": True, "validity": validity_of(app)}
    app.config["DECISION_CACHE_SECONDS"] = 60
    assert ask(client, body).json == {"granted": True, "validity": 10}
    app.extensions["authsvc"].sessions.end(token)
    assert ask(client, body).json == {"granted": False, "validity": 10}


def test_an_internal_error_denies_without_logging_the_token(client, world, monkeypatch, caplog):
    from authsvc.decision import policy

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(policy, "decide", broken)
    token = world["tokens"]["admin"]
    body = question(world, "study", **{"token-key": "token", "token-value": token})
    with caplog.at_level(logging.INFO):
        r = ask(client, body)
    assert r.status_code == 200 and r.json == {"granted": False, "validity": 0}
    assert "webhook decision failed" in caplog.text and token not in caplog.text


def test_profile_has_what_the_plugin_requires(client, world):
    for principal in PRINCIPALS:
        token = world["tokens"][principal]
        body = {"identifier": None, "token-key": "token", "token-value": token or ""}
        r = ask(client, body, path="/authz/user/get-profile")
        assert r.status_code == 200
        profile = r.json
        assert isinstance(profile["name"], str) and isinstance(profile["validity"], int)
        assert isinstance(profile["permissions"], list)
        assert isinstance(profile["authorized-labels"], list)
        assert profile["permissions"] == {"admin": ["all"], "radiologist": ["view"]}.get(
            principal, []
        ), principal
        assert profile["authorized-labels"] == ["*"], principal


# -- the service's own token, rule logins and shares ------------------------------


def test_service_token_opens_everything_and_only_when_long_enough(app, client, world):
    secrets = app.extensions["authsvc"].secrets
    secrets["service_token"] = "s" * 40
    for method in ("get", "delete"):
        body = question(
            world,
            "system",
            method=method,
            uri="/patients",
            **{"token-key": "token", "token-value": "s" * 40},
        )
        assert ask(client, body).get_json()["granted"] is True
    profile = ask(
        client, {"token-key": "token", "token-value": "s" * 40}, path="/authz/user/get-profile"
    ).get_json()
    assert profile["permissions"] == ["all"]
    secrets["service_token"] = "s" * 20  # too short to be a secret: ignored
    body = question(
        world, "system", uri="/patients", **{"token-key": "token", "token-value": "s" * 20}
    )
    assert ask(client, body).get_json()["granted"] is False


def grants(client, world, token, levels=("study", "series", "instance", "patient")):
    return {
        level: ask(
            client, question(world, level, **{"token-key": "token", "token-value": token})
        ).get_json()["granted"]
        for level in levels
    }


def test_rule_login_and_share_get_their_study_never_the_patient_level(app, client, world):
    import datetime

    from authsvc.models import RuleLogin, RuleMatch, Share, Study, utcnow

    store = app.extensions["authsvc"].sessions
    study = Study.get(Study.orthanc_id == world["named"]["study"][0])
    other = Study.get(Study.orthanc_id != study.orthanc_id)
    # The rules file is the source of truth: a login is made there, synced,
    # and then made to match this study alone.
    with open(app.config["RULES_FILE"], "w") as fh:
        json.dump(
            {
                "logins": [
                    {
                        "login": "dr-x",
                        "rules": [{"tag": "InstitutionName", "value": "nothing recorded"}],
                    }
                ]
            },
            fh,
        )
    with open(app.config["RULE_PASSWORDS_FILE"], "w") as fh:
        json.dump({"dr-x": "x"}, fh)
    app.extensions["authsvc"].rules.check()
    login = RuleLogin.get(RuleLogin.name == "dr-x")
    RuleMatch.create(login=login, study=study)
    rule_token = store.start(rule_login=login)
    share = Share.create(
        secret_hash="h" * 64,
        patient=study.patient,
        study=study,
        expires_at=utcnow() + datetime.timedelta(days=1),
    )
    share_token = store.start(share=share)
    for token in (rule_token, share_token):
        assert grants(client, world, token) == {
            "study": True,
            "series": True,
            "instance": True,
            "patient": False,
        }
        other_study = question(world, "study", **{"token-key": "token", "token-value": token})
        other_study["orthanc-id"], other_study["dicom-uid"] = other.orthanc_id, other.study_uid
        assert ask(client, other_study).get_json()["granted"] is False
        profile = ask(
            client, {"token-key": "token", "token-value": token}, path="/authz/user/get-profile"
        ).get_json()
        assert profile["permissions"] == [] and profile["authorized-labels"] == ["*"]
    RuleMatch.delete().execute()  # the rule stops matching: refused at once
    assert grants(client, world, rule_token, ("study",)) == {"study": False}
    # Revoked by an admin: this process refuses at once (other processes
    # within SESSION_CACHE_SECONDS, see test_session_cache_*).
    r = client.post(
        f"/api/shares/{share.id}/revoke",
        json={},
        headers={"Authorization": "Bearer " + world["tokens"]["admin"]},
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    assert grants(client, world, share_token, ("study",)) == {"study": False}


# -- the plugin's token routes: answers it relays, never a grant -----------------


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_token_routes_answer_200_and_name_nothing(client, world, principal):
    """Plugin 0.11.4 drops the client's connection when these get an error
    status (502 through nginx): they get a 200 that issues and names nothing,
    whoever holds the token."""
    token = world["tokens"][principal] or ""
    r = ask(
        client,
        {"token-key": "token", "token-value": token, "server-id": None},
        path="/authz/tokens/decode",
    )
    assert r.status_code == 200 and r.json["resources"] == [] and r.json["error-code"]
    r = client.put(
        "/authz/tokens/viewer-instant-link",
        headers=AUTH,
        json={
            "id": "x",
            "type": "viewer-instant-link",
            "validity-duration": 60,
            "resources": [{"level": "study", "orthanc-id": world["named"]["study"][0]}],
        },
    )
    assert r.status_code == 200 and r.json == {"token": "", "url": None}


def test_token_routes_still_need_the_secret_and_a_json_body(client, world):
    assert ask(client, {}, path="/authz/tokens/decode", headers={}).status_code == 401
    assert client.put("/authz/tokens/x", json={}).status_code == 401
    r = client.post(
        "/authz/tokens/decode", data=b"[]", headers=AUTH, content_type="application/json"
    )
    assert r.status_code == 400 and r.json["error"] == "bad_json"
