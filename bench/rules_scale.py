"""B2's "1k rules": 100k studies whose referring physicians are among 2,000
names, 1,000 rule logins (one per physician, half of them written without
carets or with a wildcard), in a SQLite database made for the run. Measures
how long the service takes to apply a new rules file (every login's studies
recomputed), and the decision rate for rule logins, in process and on one
thread (the HTTP part is what bench/run.py's B2 measures).

    .venv/bin/python -m bench.rules_scale [--studies 100000] [--rules 1000]
"""

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from authsvc import rules
from authsvc.db import database, open_database
from authsvc.decision import decide_uri
from authsvc.decision.principals import RulePrincipal
from authsvc.matching import fold_value
from authsvc.migrations import migrate
from authsvc.models import (
    Patient,
    Resource,
    RuleLogin,
    RuleMatch,
    Study,
    StudyTag,
    utcnow,
)

REFERRING = "0008,0090"


def oid(rng):
    h = f"{rng.getrandbits(160):040x}"
    return "-".join(h[i : i + 8] for i in range(0, 40, 8))


def fill(n_studies, n_names, rng):
    names = [f"MEDICO{n:04d}^ANA" for n in range(n_names)]
    now = utcnow()
    patients = [
        {"patient_id": f"RS{n}", "orthanc_id": oid(rng), "created_at": now}
        for n in range(n_studies // 2)
    ]
    with database.atomic():
        for start in range(0, len(patients), 500):
            Patient.insert_many(patients[start : start + 500]).execute()
    patient_ids = [p.id for p in Patient.select(Patient.id)]
    studies, tags, resources = [], [], []
    for n in range(n_studies):
        studies.append(
            {
                "orthanc_id": oid(rng),
                "study_uid": f"1.2.9.{n}",
                "patient": patient_ids[n // 2],
                "recorded_at": now,
                "updated_at": now,
            }
        )
    with database.atomic():
        for start in range(0, len(studies), 500):
            Study.insert_many(studies[start : start + 500]).execute()
    for study_id in [s.id for s in Study.select(Study.id)]:
        name = rng.choice(names)
        tags.append(
            {"study": study_id, "tag": REFERRING, "value": name, "folded": fold_value(name, True)}
        )
        resources.append(
            {
                "orthanc_id": oid(rng),
                "uid": f"1.2.9.{study_id}.1",
                "level": "instance",
                "study": study_id,
            }
        )
    with database.atomic():
        for start in range(0, len(tags), 500):
            StudyTag.insert_many(tags[start : start + 500]).execute()
            Resource.insert_many(resources[start : start + 500]).execute()
    return names


def write_rules(path, names, n_rules):
    logins = []
    for n, name in enumerate(names[:n_rules]):
        family, given = name.split("^")
        value = [name, f"{family} {given}", f"{family}^AN*"][n % 3]  # three spellings
        logins.append(
            {"login": f"dr-{n:04d}", "rules": [{"tag": "ReferringPhysicianName", "value": value}]}
        )
    path.write_text(json.dumps({"logins": logins}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(3)
    with tempfile.TemporaryDirectory() as tmp:
        open_database(f"sqlite:///{tmp}/rules.sqlite3")
        # The audit entries of the sync (create_app configures this otherwise).
        from authsvc import auditchain

        auditchain.configure(b"bench audit key, not a secret!!", f"{tmp}/audit-checkpoints.log")
        database.connect()
        migrate()
        started = time.perf_counter()
        names = fill(args.studies, 2 * args.rules, rng)
        filled = time.perf_counter() - started
        rules_path, passwords_path = Path(tmp) / "rules.json", Path(tmp) / "pw.json"
        write_rules(rules_path, names, args.rules)
        started = time.perf_counter()
        rules.sync(str(rules_path), str(passwords_path))
        sync_seconds = time.perf_counter() - started
        matches = RuleMatch.select().count()
        logins = list(RuleLogin.select())
        study_ids = {s.id: s.orthanc_id for s in Study.select(Study.id, Study.orthanc_id)}
        matched = {}
        for m in RuleMatch.select(RuleMatch.login, RuleMatch.study).tuples():
            matched.setdefault(m[0], []).append(m[1])
        principals = [RulePrincipal(0, rule_login=login) for login in logins]
        questions = []
        for _ in range(5000):
            principal = rng.choice(principals)
            own = matched.get(principal.rule_login.id)
            sid = rng.choice(own) if own and rng.random() < 0.7 else rng.choice(list(study_ids))
            questions.append(
                (principal, f"/studies/{study_ids[sid]}/archive", bool(own) and sid in own)
            )
        started = time.perf_counter()
        for principal, path, expected in questions:
            assert decide_uri(principal, "GET", path).granted == expected, path
        decide_seconds = time.perf_counter() - started
        database.close()
    rate = len(questions) / decide_seconds
    print(
        f"{args.studies} studies ({filled:.1f} s to fill), {args.rules} rule logins: "
        f"rules file applied in {sync_seconds:.2f} s ({matches} study matches); "
        f"rule-login decisions {rate:.0f}/s on one thread "
        f"({1000 / rate:.3f} ms each), every answer checked"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
