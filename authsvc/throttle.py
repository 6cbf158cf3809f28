"""Guessing passwords made useless (NIST SP 800-63B 5.2.2, ASVS 2.2.1).

Failed logins are counted in the database (shared by every gunicorn worker,
kept across restarts), per account and per client address, over a sliding
hour. Policy, per account (a patient ID, a rule login, a staff user):
  - after 5 failures, each new attempt must wait 2, 4, 8 ... up to 60 s after
    the previous failure; until then it is refused unevaluated (429);
  - at 100 failures within the hour, no attempt is evaluated until the oldest
    of them is an hour old;
  - a successful login clears the account's failures.
Per client address the same, with 20 free failures and 1000 an hour, since a
whole hospital ward may share one address. A patient whose ID is attacked can
log in again at most an hour after the attack stops, usually within a minute.
Shares have no account: their links carry 192 random bits, and only the
address limits apply.
"""

import datetime
from dataclasses import dataclass

from peewee import fn

from .models import LoginFailure, utcnow

WINDOW = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class Limits:
    free: int        # failures allowed before delays start
    max_delay: int   # seconds
    per_hour: int    # failures after which nothing is evaluated


ACCOUNT = Limits(free=5, max_delay=60, per_hour=100)
ADDRESS = Limits(free=20, max_delay=60, per_hour=1000)


class Throttled(Exception):
    def __init__(self, retry_after):
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = max(1, int(retry_after))


def _wait(key, limits, now):
    """Seconds this key must still wait before an attempt is evaluated."""
    since = now - WINDOW
    row = (LoginFailure.select(fn.COUNT(LoginFailure.id).alias("n"),
                               fn.MIN(LoginFailure.at).alias("first"),
                               fn.MAX(LoginFailure.at).alias("last"))
           .where((LoginFailure.key == key) & (LoginFailure.at > since)).dicts().get())
    count = row["n"] or 0
    if count >= limits.per_hour:
        first = row["first"]
        first = first if isinstance(first, datetime.datetime) else datetime.datetime.fromisoformat(str(first))
        return (first + WINDOW - now).total_seconds()
    if count < limits.free:
        return 0
    last = row["last"]
    last = last if isinstance(last, datetime.datetime) else datetime.datetime.fromisoformat(str(last))
    delay = min(2 ** (count - limits.free + 1), limits.max_delay)
    return (last + datetime.timedelta(seconds=delay) - now).total_seconds()


def account_key(kind, name):
    return f"{kind}:{name.strip().casefold()}"


def address_key(address):
    return f"ip:{address or '?'}"


def check(keys_and_limits):
    """Raise Throttled if any key must still wait."""
    now = utcnow()
    wait = max((_wait(key, limits, now) for key, limits in keys_and_limits), default=0)
    if wait > 0:
        raise Throttled(wait)


def record_failure(*keys):
    now = utcnow()
    LoginFailure.insert_many([{"key": k, "at": now} for k in keys]).execute()
    # Old rows serve nothing: keep the table small.
    LoginFailure.delete().where(LoginFailure.at < now - 2 * WINDOW).execute()


def clear(key):
    LoginFailure.delete().where(LoginFailure.key == key).execute()
