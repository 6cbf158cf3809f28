"""Access decisions, in one place a security reviewer can read alone.

    routes.py      the route grammar: a request (method, path, query) or the
                   plugin's question -> a Target naming what it touches
    policy.py      the decision: (principal, Target) -> Decision
    principals.py  who is asking: one class per kind of login, with the
                   studies it sees (pages and decisions alike)
    visibility.py  the same as two functions of any principal
    pipeline.py    token + Target -> principal -> Decision -> audit entry

The adapters that translate their callers' input live beside their routes:
authsvc/gate.py (nginx's auth_request, in front of every request to Orthanc),
authsvc/internal.py (the Lua filter's question, Orthanc's second lock on
packaged installs) and authsvc/webhook.py (the Authorization plugin's, the
second lock of the docker deployment).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import policy, routes

if TYPE_CHECKING:
    from .principals import Principal


def decide_uri(principal: Principal | None, method: str, uri: str) -> policy.Decision:
    """The decision about one request line (tests and benchmarks)."""
    return policy.decide(principal, routes.parse(method, uri))
