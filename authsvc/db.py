"""One database handle for SQLite or PostgreSQL, chosen by DATABASE_URL."""

import time

from peewee import DatabaseProxy, Psycopg2Adapter
from playhouse.db_url import connect, register_database
from playhouse.pool import PooledPostgresqlDatabase

database = DatabaseProxy()

# WAL lets gunicorn workers read while one writes; busy_timeout makes a writer
# wait for the lock instead of failing at once; foreign keys are off by default.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 5000,
    "synchronous": "normal",
}


def write_transaction():
    """A transaction that will write. SQLite: BEGIN IMMEDIATE, which waits for
    the write lock (busy_timeout) before the first read; a deferred one that
    read first fails at once with `database is locked` when it then wants to
    write and another connection wrote in between (its snapshot is stale: no
    wait can help). PostgreSQL: a plain transaction. Nested: a savepoint."""
    from peewee import SqliteDatabase

    if isinstance(database.obj, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return database.atomic()


def is_sqlite(url):
    return url.startswith("sqlite")


def open_database(url):
    """SQLite: one connection per thread, kept open across requests (opening
    one costs its pragmas every time). PostgreSQL: a pool, so that a request's
    close hands the connection back instead of ending it (a new connection
    costs ~3 ms, more than a whole access decision)."""
    if is_sqlite(url):
        db = connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    else:
        rest = url.split("://", 1)[1]
        db = connect(
            f"{POOL_SCHEME}://{rest}",
            max_connections=32,
            stale_timeout=300,
            connection_factory=_postgres_connection_class(),
        )
    database.initialize(db)
    return db


class RecentConnections(Psycopg2Adapter):
    """What peewee's pool asks psycopg2 about a pooled connection, minus a
    round trip per request: asked whether a connection it is about to hand
    out is closed, peewee's answer pings it (SELECT 1), a third of the
    statements of an access decision. A connection handed back less than
    PING_AFTER seconds ago is taken as it is, unless psycopg2 already knows
    it is broken (after a failed statement); one idle for longer is pinged as
    before. A server restart under load then costs each pooled connection
    one failed request (a decision refused, a page's 503), not more.

    Only the adapter's public methods are overridden: the pool asks
    `is_connection_reusable` when a connection comes back (the moment is
    noted there) and `is_connection_closed` before handing one out.
    tests/test_postgres_pool.py fails if a peewee upgrade stops asking."""

    PING_AFTER = 1.0

    def is_connection_reusable(self, conn):
        reusable = super().is_connection_reusable(conn)
        conn.returned_at = time.monotonic()
        return reusable

    def is_connection_closed(self, conn):
        returned = getattr(conn, "returned_at", None)
        if (
            returned is not None
            and time.monotonic() - returned < self.PING_AFTER
            and self.txn_status(conn) == self.txn_idle
        ):
            return False
        return super().is_connection_closed(conn)


class PostgresPool(PooledPostgresqlDatabase):
    """peewee's pool, asking psycopg2 through RecentConnections."""

    psycopg2_adapter = RecentConnections
    PING_AFTER = RecentConnections.PING_AFTER


POOL_SCHEME = "postgresql+authsvcpool"
register_database(PostgresPool, POOL_SCHEME)


def _postgres_connection_class():
    """psycopg2's connection, able to remember the statements it prepared
    (authsvc/fastsql.py) and when it went back to the pool (PostgresPool):
    the C class takes no attributes of its own."""
    import psycopg2.extensions

    class Connection(psycopg2.extensions.connection):
        prepared = None
        returned_at = None

    return Connection
