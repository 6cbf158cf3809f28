"""Guessing passwords made useless (NIST SP 800-63B 5.2.2, ASVS 2.2.1).

Failed logins are counted in the database (shared by every gunicorn worker,
kept across restarts), per account and per client address, over a sliding
hour. Policy, per account (a patient ID, a rule login, a staff user):
  - after 5 failures, each new attempt must wait 2, 4, 8 ... up to 60 s after
    the previous failure; until then it is refused unevaluated (429);
  - at 100 failures within the hour, no attempt is evaluated until the oldest
    of them is an hour old;
  - a successful login clears the account's failures.
Per client address the same, counted in accounts, not guesses: an address
that failed on 20 accounts within the hour must wait the same delays before
it tries one more, and after 1000 accounts tries no new one until the hour
passes. An account it already tried is left to that account's own limits: a
whole hospital ward may share one address, and an attack on one patient's ID
from it must not lock the others out, nor that patient once their own delay
is over. A patient whose ID is attacked can log in again at most an hour after
the attack stops, usually within a minute. Shares have no account: their
links carry 192 random bits, and every failed link counts on the address.

The check and the recording of the attempt are one step (`begin`), under a
lock per key (SQLite: the database's write lock, BEGIN IMMEDIATE; PostgreSQL:
an advisory lock per key until commit): the attempt is recorded as a failure
before its password is checked, and taken back if it succeeds. So N attempts
at once are checked one after the other, each seeing those before it, and no
more guesses are ever evaluated than the limits allow.
"""

import datetime
import hashlib
from dataclasses import dataclass

from peewee import SqliteDatabase, fn

from .db import database
from .models import LoginFailure, utcnow

WINDOW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Limits:
    free: int  # failures allowed before delays start
    max_delay: int  # seconds
    per_hour: int  # failures after which nothing is evaluated


ACCOUNT = Limits(free=5, max_delay=60, per_hour=100)
ADDRESS = Limits(free=20, max_delay=60, per_hour=1000)


class Throttled(Exception):
    def __init__(self, retry_after):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = max(1, int(retry_after))


def _wait(key, limits, now):
    """Seconds this key must still wait before an attempt is evaluated."""
    since = now - WINDOW
    row = (
        LoginFailure.select(
            fn.COUNT(LoginFailure.id).alias("n"),
            fn.MIN(LoginFailure.at).alias("first"),
            fn.MAX(LoginFailure.at).alias("last"),
        )
        .where((LoginFailure.key == key) & (LoginFailure.at > since))
        .dicts()
        .get()
    )
    count = row["n"] or 0
    if count >= limits.per_hour:
        first = row["first"]
        first = (
            first
            if isinstance(first, datetime.datetime)
            else datetime.datetime.fromisoformat(str(first))
        )
        return (first + WINDOW - now).total_seconds()
    if count < limits.free:
        return 0
    last = row["last"]
    last = (
        last if isinstance(last, datetime.datetime) else datetime.datetime.fromisoformat(str(last))
    )
    delay = min(2 ** (count - limits.free + 1), limits.max_delay)
    return (last + datetime.timedelta(seconds=delay) - now).total_seconds()


def account_key(kind, name):
    return f"{kind}:{name.strip().casefold()}"


def address_key(address):
    return f"ip:{address or '?'}"


def pair_key(address, account):
    """An account tried from an address (hashed: both may be long)."""
    digest = hashlib.sha256(f"{address or '?'}\0{account}".encode("utf-8", "replace"))
    return "pair:" + digest.hexdigest()[:40]


_LOCK_CLASS = 0x7468  # PostgreSQL advisory locks of the throttle: (class, hashtext(key))


def _locked(keys):
    if isinstance(database.obj, SqliteDatabase):
        return database.atomic("IMMEDIATE")
    return _pg_locked(keys)


class _pg_locked:
    def __init__(self, keys):
        self.keys = sorted(set(keys))  # one order everywhere: no deadlock
        self.tx = database.atomic()

    def __enter__(self):
        self.tx.__enter__()
        for key in self.keys:
            database.execute_sql(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, key)
            )
        return self

    def __exit__(self, *exc):
        return self.tx.__exit__(*exc)


@dataclass
class Attempt:
    """An attempt let through, recorded as a failure until it succeeds."""

    account: str  # its account key, or "" (a share link)
    rows: list  # ids of the LoginFailure rows recorded for it


def _tried(key, now):
    return (
        LoginFailure.select()
        .where((LoginFailure.key == key) & (LoginFailure.at > now - WINDOW))
        .exists()
    )


def begin(address, account=None):
    """Check the limits of the account (a key of account_key, or None for a
    share link) and of the client address, and record the attempt, in one
    step. Raise Throttled if either must still wait: nothing is recorded."""
    ip = address_key(address)
    pair = pair_key(address, account) if account else None
    with _locked([k for k in (account, ip) if k]):
        now = utcnow()
        waits = []
        if account:
            waits.append(_wait(account, ACCOUNT, now))
        # An account already tried from this address is left to its own limits.
        new_here = pair is None or not _tried(pair, now)
        if new_here:
            waits.append(_wait(ip, ADDRESS, now))
        wait = max(waits, default=0)
        if wait > 0:
            raise Throttled(wait)
        keys = ([account, pair] if account else []) + ([ip] if new_here else [])
        rows = [LoginFailure.insert(key=k, at=now).execute() for k in keys]
    return Attempt(account or "", rows)


def failed(attempt):
    """The attempt's password was wrong: it stays counted."""
    # Old rows serve nothing: keep the table small.
    LoginFailure.delete().where(LoginFailure.at < utcnow() - 2 * WINDOW).execute()


def succeeded(attempt):
    """The attempt logged in: it counts nowhere, and its account's failures
    are cleared (not the address's record of which accounts it tried)."""
    LoginFailure.delete().where(LoginFailure.id.in_(attempt.rows)).execute()
    if attempt.account:
        LoginFailure.delete().where(LoginFailure.key == attempt.account).execute()
