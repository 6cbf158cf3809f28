"""Every endpoint fed arbitrary input (hypothesis): a clear 4xx, or a denial,
never a 5xx, never a grant to someone without a session."""

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from authsvc import ingest
from authsvc.decision import decide_uri
from authsvc.matching import Matcher
from tests.helpers import fake_study

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SECRET = {"X-Authsvc-Secret": "i" * 40}

json_scalars = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=80)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
LOGIN_KEYS = ["patient_id", "username", "login", "password", "share", "days", "study"]
bodies = st.dictionaries(
    st.sampled_from(LOGIN_KEYS) | st.text(max_size=10), json_values, max_size=5
)
raw_bodies = st.binary(max_size=300) | st.text(max_size=300).map(str.encode)
paths = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=120
) | st.sampled_from(
    [
        "/studies/",
        "/patients",
        "/dicom-web/studies/1.2/series/",
        "/web-viewer/instances/jpeg95-",
        "/instances/../system",
    ]
).flatmap(lambda p: st.text(max_size=60).map(lambda t: p + t))


@pytest.fixture
def fuzz_app(app):
    data = fake_study("P-1", "1")
    ingest.store_study(data["study_orthanc_id"], data)
    app.extensions["authsvc"].secrets["webhook_secret"] = "w" * 40
    return app


def no_5xx(response):
    assert response.status_code < 500, response.get_data(as_text=True)[:300]
    if response.status_code >= 400 and response.is_json:
        assert set(response.json) >= {"error", "message"}


@SETTINGS
@given(body=bodies)
def test_login_and_shares_with_any_json(fuzz_app, body):
    client = fuzz_app.test_client()
    for path in ("/api/login", "/api/shares", "/api/logout", "/api/patients/P-1/credentials"):
        r = client.post(path, json=body)
        no_5xx(r)
        if path == "/api/login":
            assert r.status_code in (400, 401, 415, 429)


@SETTINGS
@given(raw=raw_bodies, content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_any_bytes_to_every_write(fuzz_app, raw, content_type):
    client = fuzz_app.test_client()
    for path, headers in (
        ("/api/login", {}),
        ("/internal/authorize", SECRET),
        ("/internal/stable-study", SECRET),
        ("/api/shares", {}),
        (
            "/authz/",
            {
                "Authorization": "Basic b3J0aGFuYzp3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3d3"
            },
        ),
        ("/authz/user/get-profile", {}),
    ):
        no_5xx(client.post(path, data=raw, content_type=content_type, headers=headers))


@SETTINGS
@given(
    body=st.dictionaries(
        st.sampled_from(["method", "uri", "token"]) | st.text(max_size=8), json_values, max_size=4
    )
)
def test_lua_filter_question_never_grants_without_a_session(fuzz_app, body):
    r = fuzz_app.test_client().post("/internal/authorize", json=body, headers=SECRET)
    assert r.status_code == 200
    assert r.json["granted"] is False


@SETTINGS
@given(
    body=st.dictionaries(
        st.sampled_from(
            [
                "level",
                "method",
                "orthanc-id",
                "dicom-uid",
                "uri",
                "token-key",
                "token-value",
                "server-id",
                "identifier",
                "labels",
            ]
        )
        | st.text(max_size=8),
        json_values,
        max_size=7,
    )
)
def test_webhook_never_grants_without_a_session(fuzz_app, body):
    from base64 import b64encode

    auth = {"Authorization": "Basic " + b64encode(b"orthanc:" + b"w" * 40).decode()}
    r = fuzz_app.test_client().post(
        "/authz/tokens/validate",
        data=json.dumps(body),
        content_type="application/json",
        headers=auth,
    )
    no_5xx(r)
    if r.status_code == 200:
        assert r.json["granted"] is False


@SETTINGS
@given(path=paths, method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]))
def test_decisions_on_any_path(fuzz_app, path, method):
    assert not decide_uri(None, method, path).granted
    # nginx sends the URI as the client wrote it: percent-encoded where needed.
    uri = "/orthanc" + quote(path, safe="/?=&")
    gate = fuzz_app.test_client().get(
        "/api/gate", headers={"X-Original-URI": uri, "X-Original-Method": method}
    )
    assert gate.status_code == 403


@SETTINGS
@given(
    path=st.text(max_size=80),
    query=st.dictionaries(st.text(max_size=8), st.text(max_size=20), max_size=3),
)
def test_any_get_route(fuzz_app, path, query):
    client = fuzz_app.test_client()
    no_5xx(client.get("/api/" + quote(path), query_string=query))
    no_5xx(client.get("/api/studies", query_string=query))
    no_5xx(client.get("/api/shares", query_string=query))


@SETTINGS
@given(
    tag=st.text(max_size=20) | st.sampled_from(["ReferringPhysicianName", "(0008,0080)"]),
    value=json_values,
    candidate=st.text(max_size=60),
)
def test_rule_values_either_compile_or_say_why(tag, value, candidate):
    try:
        matcher = Matcher.compile(tag, value)
    except ValueError:
        return
    assert isinstance(matcher.matches(candidate), bool)


STAFF_FIELDS = [
    "username",
    "password",
    "role",
    "generate",
    "active",
    "password_set_at",
    "language",
    "q",
    "all",
]


@pytest.fixture
def staff_client(fuzz_app):
    from authsvc.cli import ensure_admin

    ensure_admin("admin", "admin password long enough")
    c = fuzz_app.test_client()
    assert (
        c.post(
            "/api/login", json={"username": "admin", "password": "admin password long enough"}
        ).status_code
        == 200
    )
    return c


@SETTINGS
@given(
    body=st.dictionaries(
        st.sampled_from(STAFF_FIELDS) | st.text(max_size=8), json_values, max_size=5
    ),
    who=st.text(max_size=30),
)
def test_pages_forms_with_any_json(fuzz_app, staff_client, body, who):
    """The pages' writes (staff accounts, slip printed, reissue, logout) and
    their reads, as an admin, a patient and nobody."""
    patient = fuzz_app.test_client()
    for client in (staff_client, patient):
        for path in (
            "/staff/api/users",
            "/staff/api/users/1",
            "/staff/api/users/999",
            f"/staff/api/patients/{quote(who, safe='')}/printed",
            f"/staff/api/patients/{quote(who, safe='')}/reissue",
            "/staff/api/patients/P-1/printed",
        ):
            no_5xx(client.post(path, json=body))
        for path in (
            "/staff/api/studies",
            "/staff/api/shares",
            "/portal/api/shares",
            f"/portal/api/studies/{quote(who, safe='')}/series",
            f"/staff/slips/{quote(who, safe='')}",
            f"/portal/studies/{quote(who, safe='')}",
        ):
            no_5xx(
                client.get(
                    path,
                    query_string={k: str(v)[:20] for k, v in body.items() if isinstance(k, str)},
                )
            )
    no_5xx(patient.post("/logout", data={k: str(v) for k, v in body.items()}))


# -- every route at once --------------------------------------------------------

HUGE = "99999999999999999999"


def every_route(app):
    """(method, path) of every route, placeholders filled with `value`."""
    import re

    out = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                out.append((method, rule.rule))
    from authsvc import gate, internal, webhook

    out += [("POST", p) for p in [gate.GATE_PATH, internal.AUTHORIZE_PATH, *webhook.VALIDATE_PATHS]]
    return [(m, re.sub(r"<(?:[^:>]+:)?[^>]+>", "{}", p)) for m, p in out]


def deep_json(depth):
    return ("[" * depth + "]" * depth).encode()


odd_bodies = (
    raw_bodies
    | st.integers(1, 3000).map(deep_json)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.sampled_from(
        [
            b'{"patient_id": "\\ud800", "password": "x"}',
            b'"\\udfff"',
            b'{"\\ud800": 1}',
            b"[" * 1000,
            b'{"a":' * 1000,
        ]
    )
)
path_values = st.sampled_from(["1", "P-1", HUGE, "-1", "x" * 300, "%ff", "\u00e9"]) | st.text(
    max_size=12
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=odd_bodies,
    value=path_values,
    query=st.dictionaries(
        st.sampled_from(["offset", "limit", "page", "q", "since", "lang", "all", "study"]),
        st.sampled_from([HUGE, "-" + HUGE, "1e9", "", "\x7f"]) | st.text(max_size=8),
        max_size=4,
    ),
)
@example(body=b"[" * 1000, value="1", query={})
@example(body=b'{"patient_id": "\\ud800", "password": "x"}', value="1", query={})
@example(body=b"{}", value=HUGE, query={"offset": HUGE, "limit": HUGE, "page": HUGE})
@example(body=b'{"x": "' + b"y" * 20_000 + b'"}', value=HUGE, query={})
def test_every_route_with_odd_input_answers_below_500(fuzz_app, body, value, query):
    client = fuzz_app.test_client()
    for method, template in every_route(fuzz_app):
        path = template.replace("{}", quote(value, safe="") or "x")
        r = client.open(
            path,
            method=method,
            data=body if method == "POST" else None,
            query_string=query,
            content_type="application/json",
            headers=SECRET,
        )
        no_5xx(r)
