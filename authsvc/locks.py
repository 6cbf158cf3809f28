"""A lock shared by all gunicorn workers of one service (a file lock)."""

import fcntl
from contextlib import contextmanager


@contextmanager
def exclusive(lock_path):
    with open(lock_path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
