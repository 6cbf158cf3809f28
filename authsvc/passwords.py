"""System-generated passwords and their hashes.

A patient reads the password off a printed slip and types it on a phone, or a
radiologist dictates it: lowercase only, no characters that look or (in
Spanish) sound alike — i/l/1, o/0, q (next to 9), v (said like b), w, y —
and grouped by four. 12 characters of a 27-symbol alphabet give 57 bits of entropy.
"""

import math
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ALPHABET = "abcdefghjkmnprstuxz" + "23456789"
LENGTH = 12
GROUP = 4

# OWASP password storage cheat sheet, Argon2id minimum: 19 MiB, 2 passes, 1 lane.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when an account does not exist, so that a wrong login name
# costs the same time as a wrong password (no account enumeration by timing).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def entropy_bits():
    return LENGTH * math.log2(len(ALPHABET))


def generate():
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return "-".join(raw[i : i + GROUP] for i in range(0, LENGTH, GROUP))


def normalize(typed):
    """What a person typed -> what was hashed: case, spaces and dashes do not count."""
    return "".join(ch for ch in typed.lower() if ch not in " -\t")


def hash_password(plain, *, generated=True):
    """Generated passwords are normalized first; a password a person chose
    (staff) is hashed as typed, so its case and spaces keep their entropy."""
    return _hasher.hash(normalize(plain) if generated else plain)


def verify(stored_hash, typed, *, generated=True):
    """True when `typed` matches; False for no account (stored_hash None) too."""
    if not isinstance(typed, str) or not typed or len(typed) > 256:
        return False
    candidate = normalize(typed) if generated else typed
    try:
        ok = _hasher.verify(stored_hash or _DUMMY_HASH, candidate)
    except (VerificationError, InvalidHashError):
        return False
    return ok and bool(stored_hash)
