"""Which studies a principal may see: the one rule the pages, the API and
every access decision share, said by each kind of login's class
(authsvc/decision/principals.py): `visible_studies` as a query (lists),
`may_see_study` as a predicate (one study, on the decision paths);
tests/test_visibility.py checks that the two always agree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .principals import Principal


def visible_studies(principal: Principal) -> Any:
    """The studies a principal may see, as a query."""
    return principal.visible_studies()


def may_see_study(principal: Principal | None, study: Any) -> bool:
    """Whether `principal` may see `study` (None: no study, never)."""
    if study is None or principal is None:
        return False
    return principal.may_see(study)
