"""Decisions asked in-process, as Orthanc's filter asks them: the `patient`
fixture (a logged-in patient of one made-up study, on the `app` fixture),
`granted` (the answer of /internal/authorize for that patient's instance) and
`writes_during` (the SQL writes a call makes). Shared by the tests of the
session cache, of last_seen and of the audit entries written off the path."""

import threading

import pytest

from authsvc import ingest
from authsvc.db import database
from authsvc.sessions import forget_recent
from tests.helpers import fake_study

TTL = 0.5  # SESSION_CACHE_SECONDS's default


@pytest.fixture
def patient(app):
    assert app.config["SESSION_CACHE_SECONDS"] == TTL
    forget_recent()  # another test's app may have left sessions of its own
    data = fake_study("PC-1", "1")
    password = ingest.store_study(data["study_orthanc_id"], data)
    client = app.test_client()
    r = client.post("/api/login", json={"patient_id": "PC-1", "password": password})
    assert r.status_code == 200
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    return {"client": client, "token": token, "uri": f"/instances/{data['instances'][0][0]}/file"}


def granted(app, patient):
    secret = app.extensions["authsvc"].secrets["ingest_secret"]
    r = app.test_client().post(
        "/internal/authorize",
        headers={"X-Authsvc-Secret": secret},
        json={"method": "GET", "uri": patient["uri"], "token": patient["token"]},
    )
    assert r.status_code == 200
    return r.get_json()["granted"]


def writes_during(fn):
    """What `fn()` returns, and the UPDATE, INSERT and DELETE statements it
    ran on this thread (the request's; the service's own writer threads are
    off the request)."""
    seen = []
    real = database.obj.execute_sql
    me = threading.get_ident()

    def counting(sql, params=None, *args, **kwargs):
        if threading.get_ident() == me and sql.lstrip().upper().startswith(
            ("UPDATE", "INSERT", "DELETE")
        ):
            seen.append(sql)
        return real(sql, params, *args, **kwargs)

    database.obj.execute_sql = counting
    try:
        result = fn()
    finally:
        database.obj.execute_sql = real
    return result, seen
