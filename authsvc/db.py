"""One database handle for SQLite or PostgreSQL, chosen by DATABASE_URL."""

from peewee import DatabaseProxy
from playhouse.db_url import connect

database = DatabaseProxy()

# WAL lets gunicorn workers read while one writes; busy_timeout makes a writer
# wait for the lock instead of failing at once; foreign keys are off by default.
SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 5000,
                  "synchronous": "normal"}


def open_database(url):
    if url.startswith("sqlite"):
        db = connect(url, pragmas=SQLITE_PRAGMAS, check_same_thread=False)
    else:
        db = connect(url)
    database.initialize(db)
    return db
