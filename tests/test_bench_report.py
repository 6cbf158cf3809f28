"""bench/report.write turns a run's results into report.md: the summary table's
rows, each benchmark's section and the notes on what limits a missed target.

A regression guard for the report's text, written before bench/report.py's
write() was split into one function per section: it passes on the code before
the split and after it. It checks a few key lines, not a golden copy."""

import copy

from bench import report

TARGETS = {
    "B1": "ratio <= 1.1",
    "B2": "sqlite: >= 3,000 decisions/s and p99 <= 3 ms; "
    "postgresql: >= 2,500 decisions/s and p99 <= 5 ms",
    "B3": "ratio >= 0.95",
    "B4": "<= 1 s",
    "B5": "<= 100 ms, at or above OWASP's minimum",
}


def _side(rate, p50, p99):
    return {
        "requests": 1200,
        "wall_s": 1.5,
        "rate": rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "errors": 0,
        "cpu_ms_per_request": {"orthanc": 0.41, "nginx": 0.052, "service": 0.003},
    }


def _b1_entry(ratio):
    return {
        "ratio": ratio,
        "ratios": [ratio, 1.02],
        "load_average": {"min": 1.5, "max": 2.25},
        "p50_ratio": 1.021,
        "cpu_ratio": 1.05,
        "project": _side(800.0, 1.2, 4.5),
        "plain": _side(850.0, 1.1, 4.0),
    }


def _b2_run(rate, p99, target_rate, met):
    return {
        "requests": 9000,
        "rate": rate,
        "p50_ms": 0.95,
        "p99_ms": p99,
        "errors": 0,
        "cpu_ms_per_decision": {"service": 0.52, "clients": 0.05},
        "service_cores": 1.5,
        "machine_busy_cores": 1.96,
        "spread": {"load_average": {"min": 2.7, "max": 3.66}},
        "first_pass": {"rate": 1920.1, "p99_ms": 15.7},
        "target": {"rate": target_rate, "p99_ms": 3.0},
        "met": met,
    }


def all_met():
    """Every benchmark measured, every target met."""
    variants = {
        v: {"1": _b1_entry(r), "4": _b1_entry(r + 0.03)}
        for v, r in (("nginx", 1.04), ("direct-session", 1.2), ("direct-trusted", 1.1))
    }
    owasp = [
        {"m_kib": m, "t": t, "p": 1, "p50_ms": 20.0 + t, "chosen": (m, t) == (19456, 2)}
        for m, t in ((47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5))
    ]
    return {
        "quick": True,
        "sizes": {"slices": 30, "studies": 10000},
        "errors": {},
        "started": "2026-01-02 03:04:05",
        "source": "commit abc1234",
        "runtime_s": 119.6,
        "fill": {"studies": 10000, "patients": 5000, "resources": 50000},
        "B1": {
            "slices": 30,
            "requests_per_client": 310,
            "passes": 5,
            "variants": variants,
            "python_filter": "not measured: Debian's orthanc-python is not installed",
            "ratio_1": 1.04,
            "ratio_4": 1.07,
            "target": 1.1,
            "met": True,
        },
        "B2": {
            "seconds": 3.0,
            "rules": {"logins": 1000, "physicians": 2000, "apply_s_sqlite": 3.46},
            "headline": ["webhook-sqlite", "webhook-postgresql"],
            "runs": {
                "webhook-sqlite": _b2_run(3120.0, 2.5, 3000, True),
                "lua-sqlite": _b2_run(3300.0, 2.1, 3000, True),
                "webhook-postgresql": _b2_run(2700.0, 4.0, 2500, True),
            },
            "postgresql": "measured",
            "pg_statements": [[1454, 2.7539, 4004.2, 1.0, "SELECT pg_advisory_xact_lock($1)"]],
            "met": True,
        },
        "B3": {
            "slices": 30,
            "rounds": [{"project_s": 1.2, "plain_s": 1.17, "ratio": 0.975}],
            "ratio": 0.975,
            "project_rate": 24.5,
            "plain_rate": 26.1,
            "met": True,
        },
        "B4": {"samples_s": [0.312, 0.45], "stable_age_s": 2, "p50_s": 0.45, "max_s": 0.45},
        "B5": {
            "params": {"m_kib": 19456, "t": 2, "p": 1},
            "hash_prefix": ["argon2id", "v=19", "m=19456,t=2,p=1"],
            "p50_ms": 35.21,
            "p99_ms": 41.0,
            "runs": 15,
            "cpu_p50_ms": 34.0,
            "cpu_p99_ms": 39.9,
            "owasp": owasp,
            "at_or_above_owasp": True,
            "met": True,
        },
    }


def b2_missed():
    """B2 missed with its profile, SQLite only; B4 not listed in time; an error."""
    results = all_met()
    b2 = results["B2"]
    del b2["runs"]["webhook-postgresql"], b2["pg_statements"]
    b2["headline"] = ["webhook-sqlite"]
    b2["runs"]["webhook-sqlite"].update(rate=1800.0, p99_ms=9.5, met=False)
    b2["runs"]["lua-sqlite"].update(rate=1700.0, met=False)
    b2["postgresql"] = "not measured: AUTHSVC_BENCH_DATABASE_URL not given"
    b2["met"] = False
    b2["profile"] = {
        "samples": 535,
        "raw": "bench/results/b2-profile.txt",
        "by_category": [{"where": "gunicorn (HTTP parsing, sockets)", "share": 0.55}],
        "inclusive": [{"where": "decide (authsvc/decision/policy.py)", "share": 0.21}],
        "self": [{"where": "write (gunicorn/util.py:348)", "share": 0.032}],
        "breakdown": {
            "questions": 1500,
            "parts_us": {"whole request (test client)": 420.4, "decision (decide_uri)": 33.8},
            "sql_statements_per_decision": 2.13,
            "sql_by_table_per_decision": {"session": 1.0, "study": 0.74},
        },
    }
    results["B4"].update(met=False, failures=["study abc: not seen in 60 s"])
    results["errors"] = {"B2 PostgreSQL": "failed: OperationalError: boom"}
    return results


def write(tmp_path, results):
    report.write(copy.deepcopy(results), TARGETS, tmp_path)
    return (tmp_path / "report.md").read_text().splitlines()


def test_every_target_met(tmp_path):
    lines = write(tmp_path, all_met())
    assert lines[0] == "# Benchmarks: what authorization costs, measured side by side"
    assert (
        "| B3 | C-STORE rate, project's Lua vs plain Orthanc (ratio) | 0.975 (24 vs 26 "
        "slices/s) | ratio >= 0.95 | **met** |"
    ) in lines
    assert (
        "| B2 | webhook decisions, 100k studies and 1k rule logins, 4 clients | SQLite 3120/s, "
        "p50 0.95 ms, p99 2.50 ms; PostgreSQL 2700/s, p50 0.95 ms, p99 4.00 ms | "
        f"{TARGETS['B2']} | **met** |"
    ) in lines
    headings = [line for line in lines if line.startswith("#")][1:]
    assert headings == [
        "## What is compared",
        "## B1 viewer load",
        "## B2 decisions",
        "### PostgreSQL's side (pg_stat_statements, every B2 run on it)",
        "## B3 ingest",
        "## B4 stable → visible to staff",
        "## B5 password verification",
        "## What limits the targets missed",
    ]
    assert "| 1 | 1.200 | 1.170 | 0.975 |" in lines
    assert "orthanc-python filter: not measured: Debian's orthanc-python is not installed." in lines
    assert "At or above OWASP's minimum: yes." in lines
    assert lines[-2:] == ["Every target measured in this run was met.", ""]
    # The chart is linked only when matplotlib (the bench extra) drew it.
    assert ("![chart](chart.png)" in lines) == (tmp_path / "chart.png").exists()


def test_b2_missed_with_its_profile(tmp_path):
    lines = write(tmp_path, b2_missed())
    text = "\n".join(lines)
    assert (
        "| B2 | webhook decisions, 100k studies and 1k rule logins, 4 clients | SQLite 1800/s, "
        "p50 0.95 ms, p99 9.50 ms; PostgreSQL not measured | "
        f"{TARGETS['B2']} | **missed** |"
    ) in lines
    assert (
        "| B4 | stable -> visible to staff with login | p50 450 ms, max 450 ms (2 studies); "
        "1 not listed within 60 s | <= 1 s | **missed** |"
    ) in lines
    assert "**B2 PostgreSQL failed**: `failed: OperationalError: boom`" in lines
    assert "### Where the service's time goes (py-spy, same load)" in lines
    assert "PostgreSQL's side" not in text
    assert "| `decide (authsvc/decision/policy.py)` | 21.0 % |" in lines
    limits = lines[lines.index("## What limits the targets missed") :]
    assert limits[2].startswith("- **B2**: webhook-sqlite 1800/s, p99 9.5 ms, 0 errors, ")
    assert "- **B2, runs beside the figure** that missed its target: lua-sqlite 1700/s" in text
    assert "- **B4**: study abc: not seen in 60 s" in lines


def test_partial_figures_are_reported_not_fatal(tmp_path):
    """What a run cut short leaves: a B2 run that got no answer (no p50 or
    p99), B3 rounds of which one has no ratio, a B3 ratio without its rates.
    The report says "–" for each and still writes every section."""
    results = all_met()
    b2 = results["B2"]
    b2["runs"]["webhook-postgresql"].update(rate=0.0, p50_ms=None, p99_ms=None, met=False)
    b2["runs"]["lua-sqlite"].update(p99_ms=None, met=False)
    b2["met"] = False
    b3 = results["B3"]
    b3["rounds"].append({"project_s": 1.3, "plain_s": None})
    del b3["project_rate"]
    b3["met"] = False
    lines = write(tmp_path, results)
    text = "\n".join(lines)
    assert "PostgreSQL 0/s, p50 – ms, p99 – ms" in text
    assert "| 2 | 1.300 | – | – |" in lines
    assert "| B3 | C-STORE rate, project's Lua vs plain Orthanc (ratio) | 0.975 | " in text
    assert "## What limits the targets missed" in lines
