"""One database handle for SQLite or PostgreSQL, chosen by DATABASE_URL."""

from peewee import DatabaseProxy
from playhouse.db_url import connect

database = DatabaseProxy()

# WAL lets gunicorn workers read while one writes; busy_timeout makes a writer
# wait for the lock instead of failing at once; foreign keys are off by default.
SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000,
                  "synchronous": "normal"}


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
        scheme, rest = url.split("://", 1)
        if "+pool" not in scheme:
            url = f"{scheme}+pool://{rest}"
        db = connect(url, max_connections=32, stale_timeout=300,
                     connection_factory=_postgres_connection_class())
    database.initialize(db)
    return db


def _postgres_connection_class():
    """psycopg2's connection, able to remember the statements it prepared
    (authsvc/fastsql.py): the C class takes no attributes of its own."""
    import psycopg2.extensions

    class Connection(psycopg2.extensions.connection):
        prepared = None

    return Connection
