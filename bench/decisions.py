"""Where one decision's time goes, in-process and single-threaded (no HTTP,
no gunicorn, no other client): run by bench/run.py in its own process with
the project stack's configuration (AUTHSVC_CONFIG), against its database.

    python -m bench.decisions QUESTIONS.json   -> JSON on stdout

QUESTIONS.json: {"secret": ..., "questions": [[method, uri, token], ...]}.
Each part is timed over all the questions; a part the code no longer has
(the service is being changed by others) is reported as an error, not fatal.
"""

import json
import sys
import time


def _timed(fn, items):
    start = time.perf_counter()
    for item in items:
        fn(item)
    return (time.perf_counter() - start) / max(1, len(items)) * 1e6  # µs each


def main(path):
    spec = json.loads(open(path).read())
    questions = spec["questions"]
    from authsvc import create_app
    from authsvc.db import database
    from authsvc.decision import decide_uri

    app = create_app()
    services = app.extensions["authsvc"]
    client = app.test_client()
    headers = {"X-Authsvc-Secret": spec["secret"]}
    out = {"questions": len(questions), "parts_us": {}, "errors": {}}

    def part(name, fn, items):
        try:
            fn(items[0])
            out["parts_us"][name] = round(_timed(fn, items), 1)
        except Exception as exc:  # the code changed under us: say so, go on
            out["errors"][name] = f"{type(exc).__name__}: {exc}"

    def whole(q):
        r = client.post(
            "/internal/authorize",
            headers=headers,
            json={"method": q[0], "uri": q[1], "token": q[2]},
        )
        assert r.status_code == 200, r.status_code

    part("whole request (test client, no HTTP)", whole, questions)

    with app.app_context():
        database.connect(reuse_if_open=True)
        try:
            principals = []

            def resolve(q):
                principals.append(services.sessions.resolve(q[2]))

            part("session lookup (sessions.resolve)", resolve, questions)
            if len(principals) >= len(questions):
                pairs = list(zip(questions, principals[-len(questions) :], strict=False))
                part(
                    "decision (decision.decide_uri)",
                    lambda pq: decide_uri(pq[1], pq[0][0], pq[0][1]),
                    pairs,
                )
                # Statements per decision (session lookup included).
                counted = []
                real = database.obj.execute_sql

                def counting(sql, params=None, *a, **kw):
                    counted.append(sql)
                    return real(sql, params, *a, **kw)

                database.obj.execute_sql = counting
                try:
                    sample = questions[:200]
                    for q in sample:
                        p = services.sessions.resolve(q[2])
                        decide_uri(p, q[0], q[1])
                finally:
                    database.obj.execute_sql = real
                out["sql_statements_per_decision"] = round(len(counted) / len(sample), 2)
                kinds = {}
                for sql in counted:
                    table = (
                        sql.split(" FROM ", 1)[1].split()[0].strip('"')
                        if " FROM " in sql
                        else sql[:20]
                    )
                    kinds[table] = kinds.get(table, 0) + 1
                out["sql_by_table_per_decision"] = {
                    k: round(v / len(sample), 2) for k, v in sorted(kinds.items())
                }
        finally:
            database.close()
    parts = out["parts_us"]
    whole_name = "whole request through Flask (test client, no HTTP)"
    if whole_name in parts and len(parts) == 4:
        rest = parts[whole_name] - sum(v for k, v in parts.items() if k != whole_name)
        parts["the rest: Flask, test client, hooks, JSON answer (by difference)"] = round(rest, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
