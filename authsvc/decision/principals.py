"""Who is asking: one class per kind of login, each saying in one place which
studies it sees, as a query for lists (`visible_studies`) and as a predicate
for one study on the decision paths (`may_see`). tests/test_visibility.py
checks, for random worlds, that each class's two answers always agree.

    PatientPrincipal  a patient's own login: their studies, their record
    RulePrincipal     a physician's or institution's rule login: the studies
                      its rules matched (RuleMatch)
    SharePrincipal    a link a patient gave: one study, or all of theirs
    StaffPrincipal    admins and radiologists: everything

`kind` is the label the sessions table, the JSON API and the pages use; the
decisions ask the classes, never the label."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import fastsql
from ..models import RuleMatch, Study

# (login, study) is unique: one row at most, no LIMIT needed.
RULE_MATCH = fastsql.Statement(
    "rule-match",
    f'SELECT "id" FROM {fastsql.table(RuleMatch)} WHERE "login_id" = {{p}} AND "study_id" = {{p}}',
    1,
)


@dataclass(frozen=True)
class Principal:
    """A live session's login. Each subclass is given the one model it
    stands for; the others stay None (`principal.patient` of a rule login)."""

    session_id: int
    patient: Any = field(default=None, kw_only=True)
    staff: Any = field(default=None, kw_only=True)
    rule_login: Any = field(default=None, kw_only=True)
    share: Any = field(default=None, kw_only=True)
    kind: ClassVar[str] = ""
    # Staff see every study (admins and radiologists alike).
    sees_everything: ClassVar[bool] = False

    @property
    def is_admin(self) -> bool:
        return False

    def visible_studies(self) -> Any:
        """The studies this login may see, as a query."""
        return Study.select().where(False)

    def may_see(self, study: Any) -> bool:
        """Whether this login may see one study (a Study or a StudyRef)."""
        return False

    def as_json(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def audit_name(self) -> str:
        """Who this is, for logs: never a secret."""
        raise NotImplementedError


@dataclass(frozen=True)
class PatientPrincipal(Principal):
    kind: ClassVar[str] = "patient"

    def visible_studies(self) -> Any:
        return Study.select().where(Study.patient == self.patient)

    def may_see(self, study: Any) -> bool:
        return bool(study.patient_id == self.patient.id)

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "patient_id": self.patient.patient_id, "name": self.patient.name}

    @property
    def audit_name(self) -> str:
        return f"patient #{self.patient.id}"


@dataclass(frozen=True)
class RulePrincipal(Principal):
    kind: ClassVar[str] = "rule"

    def visible_studies(self) -> Any:
        matched = RuleMatch.select(RuleMatch.study).where(RuleMatch.login == self.rule_login)
        return Study.select().where(Study.id.in_(matched))

    def may_see(self, study: Any) -> bool:
        return fastsql.fetch_one(RULE_MATCH, self.rule_login.id, study.id) is not None

    def as_json(self) -> dict[str, Any]:
        login = self.rule_login
        return {"kind": self.kind, "login": login.name, "description": login.description}

    @property
    def audit_name(self) -> str:
        return f"rule login {self.rule_login.name}"


@dataclass(frozen=True)
class SharePrincipal(Principal):
    kind: ClassVar[str] = "share"

    def visible_studies(self) -> Any:
        query = Study.select().where(Study.patient == self.share.patient_id)
        return query.where(Study.id == self.share.study_id) if self.share.study_id else query

    def may_see(self, study: Any) -> bool:
        share = self.share
        return bool(study.patient_id == share.patient_id and share.study_id in (None, study.id))

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "expires_at": self.share.expires_at.isoformat() + "Z",
            "study": self.share.study.orthanc_id if self.share.study else None,
        }

    @property
    def audit_name(self) -> str:
        return f"share #{self.share.id}"


@dataclass(frozen=True)
class StaffPrincipal(Principal):
    kind: ClassVar[str] = "staff"
    sees_everything: ClassVar[bool] = True

    @property
    def is_admin(self) -> bool:
        return bool(self.staff.role == "admin")

    def visible_studies(self) -> Any:
        return Study.select()

    def may_see(self, study: Any) -> bool:
        return True

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "username": self.staff.username, "role": self.staff.role}

    @property
    def audit_name(self) -> str:
        return f"staff {self.staff.username}"


# The sessions table's `kind` -> the class of its login.
BY_KIND: dict[str, type[Principal]] = {
    cls.kind: cls for cls in (PatientPrincipal, RulePrincipal, SharePrincipal, StaffPrincipal)
}
