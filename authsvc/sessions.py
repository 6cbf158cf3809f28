"""Login sessions: random tokens handed out as a cookie, stored only as an HMAC."""

import datetime
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from .models import Patient, Session, StaffUser, utcnow

# Last-seen is written at most this often, so that a viewer loading hundreds of
# images does not turn every decision into a database write.
TOUCH_EVERY = datetime.timedelta(seconds=60)


@dataclass(frozen=True)
class Principal:
    kind: str  # "patient" | "staff"
    session_id: int
    patient: Patient = None
    staff: StaffUser = None

    @property
    def sees_everything(self):
        """Staff see every study (admins and radiologists alike)."""
        return self.kind == "staff"

    @property
    def is_admin(self):
        return self.kind == "staff" and self.staff.role == "admin"

    def as_json(self):
        if self.kind == "patient":
            return {"kind": "patient", "patient_id": self.patient.patient_id,
                    "name": self.patient.name}
        return {"kind": "staff", "username": self.staff.username,
                "role": self.staff.role}


class SessionStore:
    def __init__(self, secret_key, idle_minutes, max_hours):
        self._key = secret_key.encode() if isinstance(secret_key, str) else secret_key
        self.idle = datetime.timedelta(minutes=idle_minutes)
        self.max_age = datetime.timedelta(hours=max_hours)

    def token_hash(self, token):
        return hmac.new(self._key, token.encode(), hashlib.sha256).hexdigest()

    def start(self, *, patient=None, staff=None):
        """A new session (never a reused token); returns the token, shown once."""
        token = secrets.token_urlsafe(32)  # 256 bits
        now = utcnow()
        Session.create(token_hash=self.token_hash(token),
                       kind="patient" if patient else "staff",
                       patient=patient, staff=staff, created_at=now, last_seen=now,
                       expires_at=now + self.max_age)
        return token

    def resolve(self, token):
        """The principal of a live session, or None. Unknown, ended, idle or
        expired sessions and malformed tokens all give None."""
        if not isinstance(token, str) or not 20 <= len(token) <= 128:
            return None
        row = Session.get_or_none(Session.token_hash == self.token_hash(token))
        if row is None or row.ended:
            return None
        now = utcnow()
        if now >= row.expires_at or now - row.last_seen >= self.idle:
            return None
        if row.kind == "staff" and not row.staff.active:
            return None
        if now - row.last_seen >= TOUCH_EVERY:
            Session.update(last_seen=now).where(Session.id == row.id).execute()
        if row.kind == "patient":
            return Principal("patient", row.id, patient=row.patient)
        return Principal("staff", row.id, staff=row.staff)

    def end(self, token):
        if isinstance(token, str) and token:
            (Session.update(ended=True)
             .where(Session.token_hash == self.token_hash(token)).execute())

    def end_all_for_patient(self, patient):
        Session.update(ended=True).where(Session.patient == patient).execute()
