"""Which studies a principal may see: the one rule the pages, the API and
every access decision share. `visible_studies` says it as a query (lists),
`may_see_study` as a predicate (one study, on the decision paths);
tests/test_visibility.py checks that the two always agree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import fastsql
from ..models import RuleMatch, Study

if TYPE_CHECKING:
    from ..sessions import Principal


def visible_studies(principal: Principal) -> Any:
    """The studies a principal may see, as a query."""
    if principal.sees_everything:
        return Study.select()
    if principal.kind == "patient":
        return Study.select().where(Study.patient == principal.patient)
    if principal.kind == "rule":
        return Study.select().where(
            Study.id.in_(
                RuleMatch.select(RuleMatch.study).where(RuleMatch.login == principal.rule_login)
            )
        )
    if principal.kind == "share":
        share = principal.share
        query = Study.select().where(Study.patient == share.patient_id)
        return query.where(Study.id == share.study_id) if share.study_id else query
    return Study.select().where(False)


# (login, study) is unique: one row at most, no LIMIT needed.
RULE_MATCH = fastsql.Statement(
    "rule-match",
    f'SELECT "id" FROM {fastsql.table(RuleMatch)} WHERE "login_id" = {{p}} AND "study_id" = {{p}}',
    1,
)


def may_see_study(principal: Principal | None, study: Any) -> bool:
    """Whether `principal` may see `study` (None: no study, never)."""
    if study is None or principal is None:
        return False
    if principal.sees_everything:
        return True
    if principal.kind == "patient":
        return study.patient_id == principal.patient.id
    if principal.kind == "rule":
        return fastsql.fetch_one(RULE_MATCH, principal.rule_login.id, study.id) is not None
    if principal.kind == "share":
        share = principal.share
        return study.patient_id == share.patient_id and share.study_id in (None, study.id)
    return False
