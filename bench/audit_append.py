"""What one audit entry costs to append (it may be on a request path: a
login, the first decision about a study in an hour), and what verifying the
whole log costs, on a fresh database.

    python -m bench.audit_append [--entries 2000] [--database-url postgresql://...]

Run from a checkout (PYTHONPATH=<checkout>) to compare versions: the keyed
chain against the plain SHA-256 one. Prints per-append p50/p99 and the mean.
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=2000)
    ap.add_argument("--database-url", default="")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    secrets = folder / "secrets.json"
    secrets.write_text(
        json.dumps({"secret_key": "k" * 40, "ingest_secret": "i" * 40, "audit_key": "a" * 40})
    )
    from authsvc import audit, create_app
    from authsvc.db import database
    from authsvc.migrations import migrate

    create_app(
        {
            "DATABASE_URL": args.database_url or f"sqlite:///{folder / 'db.sqlite3'}",
            "DATA_DIR": str(folder),
            "SECRETS_FILE": str(secrets),
            "RULES_FILE": str(folder / "rules.json"),
            "RULE_PASSWORDS_FILE": str(folder / "rule-passwords.json"),
        }
    )
    database.connect(reuse_if_open=True)
    migrate()
    times = []
    for i in range(args.entries):
        start = time.perf_counter()
        audit.record("login_failed", actor=f"patient X{i}", address="10.0.0.1")
        times.append(time.perf_counter() - start)
    times.sort()
    ms = [t * 1000 for t in times]
    print(
        f"append x{args.entries}: p50 {ms[len(ms) // 2]:.3f} ms, "
        f"p99 {ms[int(len(ms) * 0.99)]:.3f} ms, mean {statistics.mean(ms):.3f} ms"
    )
    start = time.perf_counter()
    try:
        from authsvc import auditchain

        ok = auditchain.verify().ok
    except ImportError:
        ok = audit.verify() is None
    print(f"verify {args.entries} entries: {(time.perf_counter() - start) * 1000:.0f} ms, ok={ok}")


if __name__ == "__main__":
    main()
