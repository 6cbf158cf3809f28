"""From a token and a parsed request to a decision, with its audit entry: the
one path every adapter takes (nginx's check, the Lua filter's question, the
Authorization plugin's webhook). Adapters only translate their input into a
Target and the Decision into their answer."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from .. import audit, fastsql
from ..models import StaffUser
from . import policy
from .principals import Principal, StaffPrincipal
from .routes import Kind, Target

if TYPE_CHECKING:
    from .. import Services

MIN_SECRET_LENGTH = 32

# The service itself, when it reads Orthanc behind the plugin (ingest): it
# presents `service_token` and may read everything, as an admin.
SERVICE = StaffPrincipal(
    0,
    staff=StaffUser(username="authsvc-service", role="admin", active=True, password_hash=""),
)


def principal_of(services: Services, token: str | None) -> Principal | None:
    """The principal a token stands for: the service's own token, a live
    session, or None."""
    if not token:
        return None
    service_token = services.secrets.get("service_token") or ""
    if len(service_token) >= MIN_SECRET_LENGTH and hmac.compare_digest(
        token.encode(), service_token.encode()
    ):
        return SERVICE
    return services.sessions.decide_as(token)


# How long nginx's check may wait for Orthanc's lookups: its own answer must
# come within nginx's 1 s.
LOOKUP_SECONDS = 0.5


def orthanc_agrees(services: Services, target: Target, decision: policy.Decision) -> bool:
    """Whether Orthanc holds, under what the request names by DICOM identity
    (a DICOMweb request's StudyInstanceUIDs, a patient granted at the patient
    level), only the studies the decision granted. A modality may reuse a
    UID, and DICOMweb answers for every study holding it; Orthanc files a
    study under a patient before the service has recorded it: one the service
    has not recorded (not stable yet, refused at ingest, held in an identity
    conflict) is no study of the principal's. Only nginx's check asks this:
    it runs before the request reaches Orthanc, where the Lua filter, which
    holds Orthanc's Lua lock, cannot call Orthanc back. Staff's grants do not
    depend on the studies; on any failure, no."""
    if not decision.granted or decision.scope != "keys":
        return True
    uids = (
        target.study_uids
        if target.kind is Kind.SEARCH
        else target.uids[:1]
        if target.kind is Kind.DICOMWEB
        else ()
    )
    if not uids and not decision.patients:
        return True
    granted = {study.orthanc_id for study in decision.studies}
    orthanc = services.orthanc
    try:
        return all(
            orthanc.studies_with_uid(uid, LOOKUP_SECONDS) <= granted for uid in uids
        ) and all(
            orthanc.studies_of_patient(oid, LOOKUP_SECONDS) <= granted for oid in decision.patients
        )
    except Exception:
        return False


def answer(
    services: Services, token: str | None, target: Target, address: str = ""
) -> policy.Decision:
    """The decision about `target` for whoever holds `token`."""
    sessions = services.sessions
    # A viewer asks about hundreds of resources of one study in a row: a
    # study granted to this session a moment ago (SESSION_CACHE_SECONDS, the
    # session's own memory) answers for its resources without the database.
    # Only reads of one resource by Orthanc ID, which name nothing else.
    remembered = (
        target.kind is Kind.RESOURCE
        and target.method == "GET"
        and not target.expected_uid
        and sessions.remembered_grant(token, target.orthanc_id)
    )
    if remembered:
        return policy.Decision(True, "a study this login may see", keys=remembered)
    session_lookup = sessions.session_lookup(token)
    if session_lookup is None:
        # A session this process remembers (or no token at all): the
        # principal first, so that the study's lookup can bring what this
        # kind of login needs with it (a rule login's match).
        principal = principal_of(services, token)
        fastsql.prefetch([policy.lookup_for(target, principal)])
    else:
        # The session and the study asked about, in one statement.
        fastsql.prefetch([session_lookup, policy.lookup_for(target)])
        principal = principal_of(services, token)
    decision = policy.decide(principal, target)
    for study in decision.studies:
        audit.note_study_access(principal, study, address)
    # Granted: a principal (decide refuses None).
    if (
        decision.granted
        and target.kind is Kind.RESOURCE
        and principal is not None
        and not principal.sees_everything
    ):
        sessions.remember_grant(token, decision.keys)
    return decision
