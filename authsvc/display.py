"""The display copy of a patient's password: kept only until its slip is printed.

Verification never uses it (that is the Argon2id hash). Staff must see a new
login's password on the dashboard until they print the slip, so the plaintext
is kept *encrypted* (Fernet: AES-128-CBC + HMAC-SHA256) under a key derived from
the `display_key` secret, which lives in the secrets file, never in the
database. A stolen database therefore holds no usable password, and printing
the slip wipes the copy.

Each copy is bound to its patient and to the moment the password was set: a
copy left behind by an older password no longer matches
`Patient.password_set_at` and is never shown. Without a display key no copy
is kept at all (fail closed): a reissue (authsvc/credentials.py) then shows
its new password once, in its answer, and no slip can show it.
"""

import base64
import json
import logging

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import ConfigError

log = logging.getLogger(__name__)

_INFO = b"authsvc: display copy of a new patient password, v1"


class DisplayBox:
    def __init__(self, secret):
        if len(secret) < 32:
            raise ConfigError("display_key must have 32+ characters")
        raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(raw))

    def seal(self, patient_id, password, set_at):
        payload = json.dumps({"p": patient_id, "pw": password, "t": set_at.isoformat()})
        return self._fernet.encrypt(payload.encode()).decode()

    def open(self, token, patient_id, set_at):
        try:
            data = json.loads(self._fernet.decrypt(token.encode()))
        except (InvalidToken, ValueError, TypeError):
            return None
        if data.get("p") != patient_id or set_at is None or data.get("t") != set_at.isoformat():
            return None
        return data.get("pw")


# Set by create_app (never at import): the ingest thread has no app context.
_box = None


def init_app(app, secrets):
    global _box
    key = secrets.get("display_key") or ""
    _box = DisplayBox(key) if key else None
    if _box is None:
        log.warning(
            "no display_key secret: new passwords are not kept for the "
            "dashboard; a reissued password is shown once, to the staff member who asked"
        )
    app.extensions["authsvc_display"] = _box


def available():
    return _box is not None


def seal(patient_id, password, set_at):
    """The encrypted copy to store, or None when there is no key."""
    return _box.seal(patient_id, password, set_at) if _box else None


def pending_password(patient):
    """The plaintext of a patient's unprinted password, or None."""
    if _box is None or not patient.display_password:
        return None
    return _box.open(patient.display_password, patient.patient_id, patient.password_set_at)
