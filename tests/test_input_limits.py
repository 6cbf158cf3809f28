"""Malformed input gets a 4xx JSON error in the page's language,
never a 5xx (in-process; the same cases through nginx are in
tests/test_hardening_stack.py)."""

import pytest

from authsvc import ingest
from tests.helpers import admin_test_client, fake_study

ADMIN_PW = "admin password long enough"
DEEP = ("[" * 1000).encode()
DEEP_OBJECT = ('{"a":' * 1000 + "1" + "}" * 1000).encode()
LONE_SURROGATE = b'{"patient_id": "\\ud800", "password": "x"}'
HUGE = "99999999999999999999"

# Every route of the service that reads a JSON body.
JSON_WRITES = [
    "/api/login",
    "/api/logout",
    "/api/shares",
    "/api/shares/1/revoke",
    "/api/patients/P-1/credentials",
    "/api/sessions/1/end",
    "/api/ingest/conflicts/x/resolve",
    "/staff/api/users",
    "/staff/api/users/1",
    "/staff/api/patients/P-1/printed",
    "/staff/api/patients/P-1/reissue",
    "/staff/api/conflicts/x/resolve",
    "/internal/stable-study",
    "/internal/authorize",
    "/authz/tokens/validate",
    "/authz/user/get-profile",
]


@pytest.fixture
def admin(app):
    data = fake_study("P-1", "1")
    ingest.store_study(data["study_orthanc_id"], data)
    return admin_test_client(app, ADMIN_PW)


def check_4xx(r, lang=None):
    assert 400 <= r.status_code < 500, (r.status_code, r.get_data(as_text=True)[:200])
    assert r.is_json and set(r.json) >= {"error", "message"}, r.get_data(as_text=True)[:200]
    return r.json


@pytest.mark.parametrize(
    "body", [DEEP, DEEP_OBJECT, LONE_SURROGATE], ids=["array", "object", "surrogate"]
)
def test_deep_json_and_lone_surrogates_are_refused_on_every_json_route(app, admin, body):
    headers = {"X-Authsvc-Secret": "i" * 40}
    for client in (admin, app.test_client()):
        for path in JSON_WRITES:
            r = client.post(path, data=body, content_type="application/json", headers=headers)
            if path == "/internal/authorize":  # always 200, a denial (the Lua filter's contract)
                assert r.status_code == 200 and r.json["granted"] is False
                continue
            check_4xx(r)


def test_bad_input_is_answered_in_the_pages_language(app):
    c = app.test_client()
    es = check_4xx(c.post("/api/login?lang=es", data=DEEP, content_type="application/json"))
    en = check_4xx(
        c.post(
            "/api/login",
            data=DEEP,
            content_type="application/json",
            headers={"Accept-Language": "en"},
        )
    )
    assert es["error"] == en["error"] == "bad_json"
    assert es["message"] != en["message"]
    es = check_4xx(
        c.post("/api/login?lang=es", data=LONE_SURROGATE, content_type="application/json")
    )
    assert "texto" in es["message"]


def test_huge_integers_in_queries_and_paths(app, admin):
    for path in (
        f"/api/studies?offset={HUGE}",
        f"/api/studies?limit={HUGE}",
        f"/api/studies?offset=-{HUGE}",
        f"/api/audit?limit={HUGE}",
        f"/portal?page={HUGE}",
    ):
        r = admin.get(path)
        assert r.status_code < 500, (path, r.status_code)
    assert check_4xx(admin.get(f"/api/studies?offset={HUGE}"))["error"] == "bad_field"
    assert admin.get("/api/studies?offset=0&limit=5").status_code == 200
    for path in (
        f"/api/sessions/{HUGE}/end",
        f"/api/shares/{HUGE}/revoke",
        f"/staff/api/users/{HUGE}",
    ):
        r = admin.post(path, json={})
        assert r.status_code == 404, (path, r.status_code)


def test_bodies_over_the_limit_are_refused_after_being_read(app):
    """A body over MAX_BODY_BYTES: 413 in JSON, and the service read it to its
    end first (so that a proxy still sending it never sees a broken pipe)."""
    c = app.test_client()
    big = b'{"patient_id": "' + b"x" * (app.config["MAX_BODY_BYTES"] + 10) + b'"}'
    r = c.post("/api/login", data=big, content_type="application/json")
    assert r.status_code == 413 and r.json["error"] == "too_large"

    class Counting:
        def __init__(self, data):
            self.data, self.pos = data, 0

        def read(self, n=-1):
            n = len(self.data) - self.pos if n is None or n < 0 else n
            part = self.data[self.pos : self.pos + n]
            self.pos += len(part)
            return part

        readline = read

        def tell(self):
            return self.pos

        def seek(self, pos, whence=0):
            self.pos = pos if whence == 0 else len(self.data) if whence == 2 else self.pos + pos
            return self.pos

    stream = Counting(b"y" * 300_000)
    r = c.post(
        "/api/sessions/1/end",
        input_stream=stream,
        content_length=300_000,
        content_type="application/json",
    )
    assert r.status_code in (401, 413)
    assert stream.pos == 300_000  # drained
