"""The service's PostgreSQL pool (authsvc/db.py): no ping for a connection
handed back a moment ago, a ping for one idle longer, and a connection the
server dropped costs one refused decision, then the next one is fine."""

import pytest
from peewee import Psycopg2Adapter
from playhouse.pool import PooledPostgresqlDatabase

from authsvc import audit, ingest
from authsvc.db import PostgresPool, database
from authsvc.sessions import forget_recent
from tests.helpers import ON_POSTGRES, fake_study

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="PostgreSQL only")


@pytest.fixture
def pings(app, monkeypatch):
    """Counts the pool's pings (psycopg2's adapter pings when asked whether
    a connection is closed); starts with no idle connection in the pool."""
    count = []
    real = Psycopg2Adapter.is_connection_closed

    def counting(self, conn):
        count.append(1)
        return real(self, conn)

    monkeypatch.setattr(Psycopg2Adapter, "is_connection_closed", counting)
    if not database.is_closed():
        database.close()
    database.obj.close_idle()
    return count


def test_a_connection_back_a_moment_ago_is_not_pinged(pings):
    assert isinstance(database.obj, PostgresPool)
    database.connect()
    conn = database.connection()
    database.close()
    database.connect()  # handed back just now
    assert database.connection() is conn and pings == []
    database.close()
    conn.returned_at -= PostgresPool.PING_AFTER + 1  # as if idle for longer
    database.connect()
    assert database.connection() is conn and pings == [1]
    database.close()


def test_a_dropped_connection_costs_one_refusal(app, pings):
    data = fake_study("PG-1", "1")
    password = ingest.store_study(data["study_orthanc_id"], data)
    client = app.test_client()
    r = client.post("/api/login", json={"patient_id": "PG-1", "password": password})
    token = r.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    secret = app.extensions["authsvc"].secrets["ingest_secret"]

    def granted():
        r = client.post(
            "/internal/authorize",
            headers={"X-Authsvc-Secret": secret},
            json={
                "method": "GET",
                "token": token,
                "uri": f"/instances/{data['instances'][0][0]}/file",
            },
        )
        return r.get_json()["granted"]

    assert granted()
    # The decision's audit entry, written by the service's own thread (with a
    # connection of the pool), is written now: the pool is left alone below.
    audit.access_notes.flush()
    database.connect(reuse_if_open=True)
    pid = database.execute_sql("SELECT pg_backend_pid()").fetchone()[0]
    database.close()
    other = PooledPostgresqlDatabase(database.obj.database, **database.obj.connect_params)
    other.execute_sql("SELECT pg_terminate_backend(%s)", (pid,))
    other.close()
    # (The session's short memory would answer the same study without the
    # database for SESSION_CACHE_SECONDS: forgotten, as it is after that time.)
    forget_recent()
    assert not granted()  # the pooled connection was dead: refused, and discarded
    assert granted()  # a new connection
