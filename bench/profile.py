"""py-spy on the service's gunicorn workers while a load runs, summarized
from its collapsed stacks: where the workers' time goes."""

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _py_spy():
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start(pid, out, seconds, rate=250):
    exe = _py_spy()
    if exe is None:
        return None
    return subprocess.Popen(
        [
            exe,
            "record",
            "--pid",
            str(pid),
            "--subprocesses",
            "--duration",
            str(seconds),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--gil",
            "--nonblocking",
            "--output",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


CATEGORIES = [  # first match wins, tested against each frame of a stack, leaf first
    ("Argon2 / hashing", ("argon2", "hmac", "hashlib")),
    ("SQLite (execute, fetch)", ("execute_sql", "sqlite3", "cursor")),
    ("peewee (query building, models)", ("peewee", "playhouse")),
    ("authsvc.decision (route grammar, policy)", ("authsvc/decision/",)),
    ("authsvc.sessions", ("authsvc/sessions.py",)),
    ("authsvc other", ("authsvc/",)),
    ("JSON", ("json/",)),
    ("Flask / Werkzeug (routing, request, response)", ("flask/", "werkzeug/")),
    ("gunicorn (HTTP parsing, sockets)", ("gunicorn/",)),
]


def _frames(stack):
    # A raw line: "process...;thread...;func (file:line);func (file:line) count"
    return [
        f
        for f in stack.split(";")
        if "(" in f and ":" in f and not f.startswith(("process ", "thread "))
    ]


def finish(proc, out):
    try:
        log, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        return {"error": "py-spy did not finish"}
    if not Path(out).exists():
        return {"error": f"py-spy wrote nothing: {log.strip()[-300:]}"}
    return summarize(out)


def summarize(out):
    """Shares of samples by layer, by function (inclusive) and by line (self)."""
    inclusive, leaf, cats = Counter(), Counter(), Counter()
    total = 0
    for line in Path(out).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if not frames:
            continue
        total += n
        names = [f.strip() for f in frames]
        for name in {_short(f, line=False) for f in names}:
            inclusive[name] += n
        leaf[_short(names[-1])] += n
        cat = "other"
        for frame in reversed(names):
            hit = next((c for c, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if hit:
                cat = hit
                break
        cats[cat] += n
    if not total:
        return {"error": "py-spy recorded no samples"}

    def share(counter, k):
        return [{"where": w, "share": round(c / total, 3)} for w, c in counter.most_common(k)]

    return {
        "samples": total,
        "by_category": share(cats, 12),
        "inclusive": share(inclusive, 60),
        "self": share(leaf, 15),
    }


def _short(frame, line=True):
    """'decide (/x/authsvc/decision/policy.py:123)' -> 'decide (authsvc/decision/policy.py:123)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    for marker in ("site-packages/", "/lib/python3.11/", str(REPO) + "/"):
        if marker in where:
            where = where.split(marker, 1)[1]
    if not line:
        where = where.rsplit(":", 1)[0]
    return f"{name} ({where})" if where else name
