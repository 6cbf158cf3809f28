"""bench/results/report.md and chart.png from the results of one run."""

import os
import platform
import subprocess
from pathlib import Path


def _cpu():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def source():
    """Which code was measured: the commit, and whether the service's files
    had changes not committed yet (others work in the same tree)."""
    repo = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            [
                "git",
                "-C",
                str(repo),
                "status",
                "--porcelain",
                "--",
                "authsvc",
                "lua",
                "orthanc-config",
            ],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        head, dirty = "", []
    if not head:
        return "code outside a git checkout"
    return f"commit {head}" + (
        f" plus {len(dirty)} uncommitted changed or new files in authsvc/, lua/, orthanc-config/"
        if dirty
        else ""
    )


def _met(flag):
    return "n/a" if flag is None else ("**met**" if flag else "**missed**")


RUN_NAMES_SHORT = {"webhook-sqlite": "SQLite", "webhook-postgresql": "PostgreSQL"}


def _b1_spread(b1):
    """The figure's rounds: min–max of each ratio, and the machine's load."""
    parts = []
    for clients, e in b1["variants"]["nginx"].items():
        load = e.get("load_average") or {}
        parts.append(
            f"{clients} cl. {min(e['ratios']):.2f}–{max(e['ratios']):.2f} over "
            f"{len(e['ratios'])} rounds, load {load.get('min')}–{load.get('max')}"
        )
    return " (median; " + "; ".join(parts) + ")"


def _b1_figure(results):
    b1 = results.get("B1")
    return (
        "B1",
        "viewer load, patient via filter vs no authorization (time ratio)",
        f"{b1['ratio_1']:.2f} (1 client), {b1['ratio_4']:.2f} (4 clients)" + _b1_spread(b1)
        if b1 and "ratio_4" in b1
        else "not measured",
        b1.get("met") if b1 else None,
    )


def _b2_figure(results):
    b2 = results.get("B2") or {}
    b2_text = (
        "; ".join(
            f"{RUN_NAMES_SHORT.get(name, name)} {b2['runs'][name]['rate']:.0f}/s, "
            f"p50 {_ms(b2['runs'][name]['p50_ms'])} ms, p99 {_ms(b2['runs'][name]['p99_ms'])} ms"
            for name in b2.get("headline", [])
            if name in b2.get("runs", {})
        )
        or "not measured"
    )
    # Both databases are the target: a figure from SQLite alone says so.
    if b2.get("runs") and b2.get("postgresql") != "measured":
        b2_text += "; PostgreSQL not measured"
    return (
        "B2",
        "webhook decisions, 100k studies and 1k rule logins, 4 clients",
        b2_text,
        b2.get("met") if b2 else None,
    )


def _b3_figure(results):
    b3 = results.get("B3")
    return (
        "B3",
        "C-STORE rate, project's Lua vs plain Orthanc (ratio)",
        f"{b3['ratio']:.3f}"
        + (
            f" ({b3['project_rate']:.0f} vs {b3['plain_rate']:.0f} slices/s)"
            if b3.get("project_rate") is not None and b3.get("plain_rate") is not None
            else ""
        )
        if b3 and b3.get("ratio") is not None
        else "not measured",
        b3.get("met") if b3 else None,
    )


def _b4_figure(results):
    b4 = results.get("B4")
    b4_text = (
        f"p50 {b4['p50_s'] * 1000:.0f} ms, max {b4['max_s'] * 1000:.0f} ms "
        f"({len(b4['samples_s'])} studies)"
        if b4 and "p50_s" in b4
        else "not measured"
    )
    if b4 and b4.get("failures"):
        b4_text += f"; {len(b4['failures'])} not listed within 60 s"
    return ("B4", "stable -> visible to staff with login", b4_text, b4.get("met") if b4 else None)


def _b5_figure(results):
    b5 = results.get("B5")
    return (
        "B5",
        "password verification (Argon2id)",
        f"p50 {b5['p50_ms']:.1f} ms, p99 {b5['p99_ms']:.1f} ms (CPU p99 "
        f"{b5.get('cpu_p99_ms', 0):.1f} ms) at m={b5['params']['m_kib']} KiB, "
        f"t={b5['params']['t']}, p={b5['params']['p']}"
        if b5 and "p50_ms" in b5
        else "not measured",
        b5.get("met") if b5 else None,
    )


def figures(results):
    """The five headline figures: (id, name, measured text, met or None)."""
    return [f(results) for f in (_b1_figure, _b2_figure, _b3_figure, _b4_figure, _b5_figure)]


def summary_lines(results, targets):
    lines = [f"{'Figure':<7} {'Measured':<78} {'Target':<41} Result"]
    for fid, _name, measured, met in figures(results):
        verdict = "n/a" if met is None else ("MET" if met else "MISSED")
        lines.append(f"{fid:<7} {measured:<78} {targets[fid]:<41} {verdict}")
    for name, error in results.get("errors", {}).items():
        lines.append(f"error in {name}: {error}")
    return "\n".join(lines)


def _ms(x):
    return _num(x, ".2f")


def _num(x, fmt):
    """A figure a run may lack (cut short, no answer): "–" then."""
    return "–" if x is None else format(x, fmt)


def _spread(run, key, fmt):
    """A run's figure with its rounds' min–max (bench/b2.py measures several)."""
    value = run.get(key)
    if value is None:
        return "–"
    s = (run.get("spread") or {}).get(key)
    text = fmt.format(value)
    if s and s["min"] != s["max"]:
        text += f" ({fmt.format(s['min'])}–{fmt.format(s['max'])})"
    return text


def _us(ms):
    return "–" if ms is None else f"{ms * 1000:.0f}"


# -- report.md, one function per section; each returns its lines, which
# write() joins with newlines (a line ending in "\n" leaves a blank line).


def write(results, targets, out):
    out = Path(out)
    chart_ok = chart(results, targets, out / "chart.png")
    md = [
        *_summary(results, targets, chart_ok),
        *_compared(results),
        *_b1_section(results),
        *_b2_section(results),
        *_b3_section(results),
        *_b4_section(results),
        *_b5_section(results),
        *_limits_section(results),
    ]
    (out / "report.md").write_text("\n".join(md) + "\n")


def _summary(results, targets, chart_ok):
    """The title, the run's circumstances, the five figures, the chart and errors."""
    md = ["# Benchmarks: what authorization costs, measured side by side\n"]
    md.append(
        f"Run {results['started']}, {'`--quick` sizes' if results['quick'] else 'full sizes'}, "
        f"{results.get('runtime_s', 0):.0f} s in all, on {os.cpu_count()} cores ({_cpu()}), "
        f"{results.get('source') or source()}. "
        "Other work shares this machine: absolute times are noisy, the ratios are "
        "measured back to back, alternating which side goes first, and the median "
        "of the rounds is kept.\n"
    )
    md.append("| | figure | measured | target | |")
    md.append("| --- | --- | --- | --- | --- |")
    for fid, name, measured, met in figures(results):
        md.append(f"| {fid} | {name} | {measured} | {targets[fid]} | {_met(met)} |")
    md.append("")
    if chart_ok:
        md.append("![chart](chart.png)\n")
    for name, error in results.get("errors", {}).items():
        md.append(f"**{name} failed**: `{error}`\n")
    return md


def _compared(results):
    sizes = results["sizes"]
    return [
        "## What is compared\n",
        "Two systems run at once, each in its own temporary folder with free ports:\n\n"
        "- **project**: `deploy.trial.Stack` unchanged — Debian's Orthanc 1.10 with "
        "`lua/request-filter.lua` and `lua/stable-study.lua`, the service under gunicorn "
        "(production defaults: 4 workers of one thread, `DECISION_CACHE_SECONDS` 5, "
        "`SESSION_CACHE_SECONDS` 0.5), nginx in front;\n"
        "- **plain**: the same Orthanc binary, `orthanc.json`, plugins (Web Viewer, DICOMweb), "
        "Orthanc users and nginx template, with no Lua script and no service. nginx logs in to "
        "Orthanc as its own user exactly as on the project's stack.\n\n"
        f"Only Orthanc's `StableAge` is shortened ({results.get('B4', {}).get('stable_age_s', 2)} s "
        "instead of 60) on both: B4 measures what comes after it. The CT is pydicom's "
        f"`CT_small.dcm` (128×128, 16 bits) rewritten {sizes['slices']} times with new SOP "
        "Instance UIDs: one study, one series, one patient. Orthanc's IDs are hashes of the "
        "UIDs, so the same study has the same IDs in both Orthancs.\n",
    ]


# -- B1 -----------------------------------------------------------------------

B1_LABELS = {
    "nginx": "nginx → Orthanc, patient session (**the figure**)",
    "direct-session": "Orthanc directly, nginx's user + patient session (filter without nginx)",
    "direct-trusted": "Orthanc directly, trusted service user (Lua filter returns at once)",
    "python-filter": "*other design*: plain Orthanc + orthanc-python filter returning True, "
    "directly (vs plain)",
}


def _b1_section(results):
    b1 = results.get("B1")
    if not (b1 and "variants" in b1):
        return []
    md = ["## B1 viewer load\n", _b1_method(b1), *_b1_table(b1)]
    if b1.get("python_filter"):
        md.append(f"\northanc-python filter: {b1['python_filter']}.")
    md.append(
        "\nOnly the first two rows are the figure. The others are a breakdown measured "
        "the same way; on this shared machine a ratio moves by ±0.1–0.2 from round to "
        "round (the rounds column), so a breakdown row within that of 1.00 says "
        '"too small to see here", not "faster".'
    )
    c = b1.get("cold_1_client")
    if c:
        md.append(
            f"\nFirst (cold) load, 1 client, through nginx — the Web Viewer decodes "
            f"every image into its cache: project {c['project']['wall_s']:.2f} s, "
            f"plain {c['plain']['wall_s']:.2f} s, ratio {c['ratio']:.3f}. The rounds "
            "above are warm (images cached), where authorization weighs most.\n"
        )
    md.append("")
    return md


def _b1_method(b1):
    """What one client loads, and why nginx → plain Orthanc is the baseline."""
    return (
        f"Each client loads the whole series as the Orthanc Web Viewer does: "
        f"`/web-viewer/series/{{id}}`, `/web-viewer/is-stable-series/{{id}}`, then for each of "
        f"the {b1['slices']} slices `/web-viewer/instances/jpeg95-{{id}}_0` and "
        f"`/instances/{{id}}/file` ({b1['requests_per_client']} GETs per client"
        + (
            f": the series {b1['passes']} times over, to last long enough"
            if b1.get("passes", 1) > 1
            else ""
        )
        + "), on one "
        "keep-alive connection; 1 client, then 4 clients at once (separate processes, each "
        "its own patient session: 4 viewers). The figure is the ratio of wall times, project "
        "÷ plain (1.00 = authorization costs nothing).\n\n"
        "The fair comparison is **nginx → plain Orthanc**: the same path minus the "
        "authorization. Reaching the project's own Orthanc as the trusted service user "
        'is *not* "no authorization": the Lua filter still runs, under Orthanc\'s single '
        "Lua lock, for every request (it returns true at once), so that baseline would "
        "hide whatever running it costs. It is shown below as a breakdown, with the filter "
        "measured without nginx "
        "(Orthanc's port reached directly as nginx's Orthanc user with the session cookie), "
        "since nginx's own cost, paid on both sides, dilutes the headline ratio.\n\n"
        "Besides the time ratio (the figure), two views less sensitive to other work on "
        "the machine: the ratio of median request latencies, and the ratio of server-side "
        "CPU per request (Orthanc + nginx + service, from /proc; on a saturated 2-core "
        "server, throughput follows it).\n"
    )


def _b1_table(b1):
    md = [
        "| path | clients | time ratio (median of rounds) | rounds | p50 latency ratio "
        "| server CPU ratio | project req/s | project p50 / p99 ms "
        "| plain req/s | plain p50 / p99 ms | CPU µs/request project: Orthanc + nginx + service "
        "| plain: Orthanc + nginx |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for variant, entries in b1["variants"].items():
        for clients, e in entries.items():
            p, q = e["project"], e["plain"]
            pc, qc = p.get("cpu_ms_per_request", {}), q.get("cpu_ms_per_request", {})
            md.append(
                f"| {B1_LABELS[variant]} | {clients} | {e['ratio']:.3f} | "
                f"{', '.join(f'{x:.2f}' for x in e['ratios'])} | "
                f"{e.get('p50_ratio', float('nan')):.3f} | "
                f"{e['cpu_ratio'] if e.get('cpu_ratio') is not None else '–'} | {p['rate']:.0f} | "
                f"{_ms(p['p50_ms'])} / {_ms(p['p99_ms'])} | {q['rate']:.0f} | "
                f"{_ms(q['p50_ms'])} / {_ms(q['p99_ms'])} | "
                f"{_us(pc.get('orthanc'))} + {_us(pc.get('nginx'))} + {_us(pc.get('service'))} | "
                f"{_us(qc.get('orthanc'))} + {_us(qc.get('nginx'))} |"
            )
    return md


# -- B2 -----------------------------------------------------------------------


def _b2_section(results):
    b2 = results.get("B2")
    if not (b2 and "runs" in b2):
        return []
    return [
        "## B2 decisions\n",
        _b2_method(results),
        f"- PostgreSQL: {b2.get('postgresql', 'not measured')}.\n",
        *_b2_table(b2, results["sizes"]),
        *_b2_notes(b2),
        *_pg_statements(b2),
        *_b2_profile(b2),
    ]


def _b2_method(results):
    """The databases' contents, the questions asked and what the figure is."""
    b2 = results["B2"]
    fill = results.get("fill", {})
    rules = b2.get("rules", {})
    return (
        f"Each database holds {fill.get('studies', 0):,} synthetic studies of "
        f"{fill.get('patients', 0):,} patients ({fill.get('resources', 0):,} series and "
        "instance rows: one series of four instances each), each study naming one of "
        f"{rules.get('physicians', 0):,} referring physicians, and "
        f"{rules.get('logins', 0):,} rule logins, one per physician for half of them, "
        "their rules written with carets, with spaces or with a wildcard in turn. The "
        "rules file was applied by the service's own `rules.sync` (every login's "
        f"studies computed) in {rules.get('apply_s_sqlite', 0)} s on SQLite"
        + (
            f" and {rules['apply_s_postgresql']} s on PostgreSQL"
            if "apply_s_postgresql" in rules
            else ""
        )
        + ".\n\n"
        f"{CLIENTS_TEXT} ask gunicorn directly, as the plugin and the Lua filter do. "
        "The questions (the same ones in both protocols): 65 % a patient about their own "
        "study at every level, 10 % a patient about another patient's instance (denied), "
        "15 % a rule login about a study of its physician, 5 % about another's (denied), "
        "5 % an admin. Every answer is checked. "
        f"{b2['seconds']:.0f} s per run after a 1 s warm-up. The figure is the webhook "
        "(plugin protocol) on SQLite and on PostgreSQL; both must meet the target.\n"
    )


def _b2_run_names(sizes):
    return {
        "webhook-sqlite": "plugin webhook, SQLite (**the figure**)",
        "webhook-postgresql": "plugin webhook, PostgreSQL (**the figure**)",
        "lua-sqlite": "Lua filter's endpoint, SQLite",
        "lua-postgresql": "Lua filter's endpoint, PostgreSQL",
        "lua-sqlite-ct": f"Lua filter's endpoint, every question about the "
        f"{sizes['slices']}-slice CT",
        "webhook-sqlite-viewers": "plugin webhook, SQLite, 4 viewers (one session per client)",
        "webhook-postgresql-viewers": "plugin webhook, PostgreSQL, 4 viewers (one session "
        "per client)",
    }


def _b2_table(b2, sizes):
    md = [
        "| run | decisions/s | p50 ms | p99 ms | requests | errors | service CPU ms/decision "
        "| client CPU ms/decision | service cores used | machine busy (cores) "
        "| first pass: decisions/s, p99 ms | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    names = _b2_run_names(sizes)
    for name, r in b2["runs"].items():
        c = r.get("cpu_ms_per_decision", {})
        md.append(
            f"| {names.get(name, name)} | {_spread(r, 'rate', '{:.0f}')} | "
            f"{_ms(r['p50_ms'])} | "
            f"{_spread(r, 'p99_ms', '{:.2f}')} | {r['requests']} | {r['errors']} | "
            f"{_ms(c.get('service'))} | {_ms(c.get('clients'))} | "
            f"{r.get('service_cores', '–')} | {r.get('machine_busy_cores', '–')} | "
            + (
                f"{r['first_pass']['rate']:.0f}, {_ms(r['first_pass']['p99_ms'])} | "
                if r.get("first_pass")
                else "– | "
            )
            + f"{_met(r.get('met')) if name in b2.get('headline', []) else '(not the figure)'} |"
        )
    return md


def _settle_text(b2):
    """How long each run waited for the first pass's audit entries."""
    waits = [
        f"{RUN_NAMES_SHORT.get(n, n)} {w['waited_s']:.1f} s"
        + ("" if w.get("settled") else " (still growing: measured anyway)")
        for n, r in b2["runs"].items()
        if (w := (r.get("first_pass") or {}).get("audit_settled"))
    ]
    return " (waited: " + "; ".join(waits) + ")" if waits else ""


def _b2_notes(b2):
    """How the table's figures were taken: rounds, first pass, CPU counted."""
    return [
        "\nEach run is the median of its rounds (by rate; "
        "bench/b2.py, ROUNDS), with the rounds' min–max in brackets, and the machine's "
        "load average over them: "
        + "; ".join(
            f"{RUN_NAMES_SHORT.get(n, n)} "
            f"{r['spread']['load_average']['min']}–{r['spread']['load_average']['max']}"
            for n, r in b2["runs"].items()
            if (r.get("spread") or {}).get("load_average")
        )
        + ".\n",
        "\nThe first pass asks each question once, before the run: a principal's "
        "first question about a study in the hour also notes the audit log's entry, "
        "which the worker's writer thread appends a moment later (once per person, "
        "study and hour); the rounds start once the log's entries stop growing"
        + _settle_text(b2)
        + '. The "4 viewers" rows ask as four patients, '
        "one per client, about their own studies: there each process reuses a session "
        "it looked up for `SESSION_CACHE_SECONDS`, which the mixed questions, spread "
        "over a thousand sessions and four processes, rarely can.\n",
        f'\nThe machine has {os.cpu_count()} cores; "machine busy" counts every process '
        "on it, ours and others'. \"Service CPU\" is gunicorn's processes only (not "
        "PostgreSQL's server processes). The clients send pre-encoded requests on raw "
        "sockets and read each answer by its Content-Length (`bench/load.py`): the "
        "real client is Orthanc's C++ plugin, and a Python `http.client` cost 0.19 ms "
        "of CPU per request on the same two cores.\n",
    ]


def _pg_statements(b2):
    """pg_stat_statements' rows, or the text saying why there are none."""
    stats = b2.get("pg_statements")
    if isinstance(stats, list) and stats:
        md = [
            "\n### PostgreSQL's side (pg_stat_statements, every B2 run on it)\n",
            "| calls | mean ms | total ms | rows/call | statement |",
            "| --- | --- | --- | --- | --- |",
        ]
        for calls, mean, total, rows, query in stats:
            md.append(f"| {calls} | {mean:.3f} | {total:.0f} | {rows} | `{query}` |")
        md.append("")
        return md
    if stats:
        return [f"\n- PostgreSQL statements: {stats}.\n"]
    return []


def _b2_profile(b2):
    """bench/run.py profiles the service only when B2 missed its target."""
    prof = b2.get("profile")
    if not prof:
        return []
    md = ["### Where the service's time goes (py-spy, same load)\n"]
    md += _b2_breakdown(prof.get("breakdown") or {})
    if "error" in prof:
        md.append(f"Profile not taken: {prof['error']}\n")
    else:
        md += _b2_py_spy(prof)
    return md


def _b2_breakdown(bd):
    """One decision's parts timed in-process (bench/decisions.py)."""
    if not bd.get("parts_us"):
        return [f"In-process breakdown failed: `{bd['error']}`\n"] if bd.get("error") else []
    md = [
        f"One decision's parts, timed in-process and single-threaded over "
        f"{bd['questions']} of the same questions (`bench/decisions.py`: no HTTP, "
        "no gunicorn, no other load):\n",
        "| part | µs per decision |",
        "| --- | --- |",
    ]
    for part, us in bd["parts_us"].items():
        md.append(f"| {part} | {us:.0f} |")
    if "sql_statements_per_decision" in bd:
        md.append(
            f"\nSQL statements per decision (session lookup included): "
            f"{bd['sql_statements_per_decision']} — by table: "
            + ", ".join(f"{t} {n}" for t, n in bd["sql_by_table_per_decision"].items())
            + ".\n"
        )
    for part, err in bd.get("errors", {}).items():
        md.append(f"- {part}: not measured ({err})")
    md.append("")
    return md


def _b2_py_spy(prof):
    """py-spy's samples: by layer, the service's own functions, the hottest lines."""
    md = [
        f"py-spy sampled the gunicorn workers at 250 Hz under the same load, "
        f"keeping only threads that held the GIL (that ran Python): "
        f"{prof['samples']} samples (raw stacks: `{prof.get('raw', '')}`). "
        "Share of samples by the innermost recognised layer:\n",
        "| layer | share |",
        "| --- | --- |",
    ]
    for row in prof["by_category"]:
        md.append(f"| {row['where']} | {row['share'] * 100:.1f} % |")
    own = [r for r in prof["inclusive"] if "authsvc/" in r["where"]][:10]
    if own:
        md.append(
            "\nThe service's own functions by inclusive share (on the stack in "
            "that share of samples):\n"
        )
        md.append("| function | share |")
        md.append("| --- | --- |")
        for row in own:
            md.append(f"| `{row['where']}` | {row['share'] * 100:.1f} % |")
    md.append("\nWhere the Python time is spent (innermost function and line):\n")
    md.append("| function | share |")
    md.append("| --- | --- |")
    for row in prof["self"][:10]:
        md.append(f"| `{row['where']}` | {row['share'] * 100:.1f} % |")
    md.append("")
    return md


# -- B3, B4, B5 and what limits the targets missed ------------------------------


def _b3_section(results):
    b3 = results.get("B3")
    if not (b3 and "rounds" in b3):
        return []
    md = [
        "## B3 ingest\n",
        f"dcmtk's `storescu` sends the {b3['slices']} slices in one association "
        "(`TCP_NODELAY=1` for storescu and for both Orthancs), a new series each "
        "round, alternating which Orthanc goes first; each study is left to become "
        "stable (and, on the project's side, recorded) before the next store. Ratio = "
        "project's rate ÷ plain's rate.\n",
        "| round | project s | plain s | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for i, r in enumerate(b3["rounds"], 1):
        md.append(
            f"| {i} | {_num(r.get('project_s'), '.3f')} | {_num(r.get('plain_s'), '.3f')} "
            f"| {_num(r.get('ratio'), '.3f')} |"
        )
    md.append("")
    return md


def _b4_section(results):
    b4 = results.get("B4")
    if not (b4 and b4.get("samples_s")):
        return []
    return [
        "## B4 stable → visible to staff\n",
        "From the moment Orthanc reports the study stable (`IsStable` of `/studies/{id}`, "
        "polled every 10 ms) to the moment `GET /api/studies` as admin (through nginx, "
        "polled every 20 ms) lists it with `patient_has_login` — a new patient each time, "
        f"so the login is created then. {len(b4['samples_s'])} CT studies of "
        f"{results['sizes']['slices']} slices (the B3 rounds), with the B2 database loaded. "
        "Samples: " + ", ".join(f"{s * 1000:.0f} ms" for s in b4["samples_s"]) + ".\n",
    ]


def _b5_section(results):
    b5 = results.get("B5")
    if not (b5 and "p50_ms" in b5):
        return []
    md = [
        "## B5 password verification\n",
        f"`authsvc.passwords.verify` in-process, {b5['runs']} times: wall time p50 "
        f"{b5['p50_ms']:.1f} ms, p99 {b5['p99_ms']:.1f} ms; CPU time p50 "
        f"{b5.get('cpu_p50_ms', 0):.1f} ms, p99 {b5.get('cpu_p99_ms', 0):.1f} ms (the "
        "target is judged on the wall-time median and the CPU-time p99: a spike of "
        "the shared machine is not the KDF's cost). Hash "
        f"`${'$'.join(b5['hash_prefix'])}$…`. A whole patient login through nginx "
        f"(`POST /api/login`) took p50 {b5.get('login_p50_ms', 0):.0f} ms, "
        f"max {b5.get('login_max_ms', 0):.0f} ms.\n",
        "OWASP's Password Storage Cheat Sheet gives five equivalent minimum "
        "configurations of Argon2id; each verified here on the same machine:\n",
        "| memory | passes | lanes | verify p50 ms | |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in b5["owasp"]:
        mark = "the project's choice" if o["chosen"] else ""
        md.append(
            f"| {o['m_kib']} KiB ({o['m_kib'] // 1024} MiB) | {o['t']} | {o['p']} | "
            f"{o['p50_ms']:.1f} | {mark} |"
        )
    md.append(f"\nAt or above OWASP's minimum: {'yes' if b5['at_or_above_owasp'] else 'NO'}.\n")
    return md


def _limits_section(results):
    return ["## What limits the targets missed\n", limits(results)]


CLIENTS_TEXT = "4 client processes, each on one keep-alive connection,"


def limits(results):
    notes = []
    b1, b2, b3, b4, b5 = (results.get(k) or {} for k in ("B1", "B2", "B3", "B4", "B5"))
    if b1.get("met") is False:
        notes.append(_b1_limits(b1))
    if b2.get("met") is False:
        notes.append(_b2_limits(b2))
    beside = _b2_beside_limits(b2)
    if beside:
        notes.append(beside)
    if b3.get("met") is False:
        notes.append(
            f"- **B3** ({_num(b3.get('ratio'), '.3f')}): see the rounds above; the project's "
            "Orthanc runs no Lua per stored instance, so a miss here is noise or the "
            "service's ingest overlapping the store."
        )
    if b4.get("met") is False and b4.get("failures"):
        notes.append("- **B4**: " + "; ".join(b4["failures"]))
    elif b4.get("met") is False:
        notes.append(
            f"- **B4** (max {b4['max_s'] * 1000:.0f} ms): the ingest thread reads the "
            "study back from Orthanc's REST API (each call passes the Lua filter) and "
            "hashes a new password with Argon2id before the row is committed."
        )
    if b5.get("met") is False:
        notes.append(
            f"- **B5** ({b5['p50_ms']:.0f} ms p50, CPU {b5.get('cpu_p99_ms', 0):.0f} ms p99): Argon2id's cost is its memory "
            "(19 MiB filled twice); a busy machine stretches it."
        )
    if not notes:
        return "Every target measured in this run was met.\n"
    return "\n".join(notes) + "\n"


def _b1_limits(b1):
    """B1 missed: the breakdown rows say whether nginx, the filter or Lua itself costs."""
    v = b1["variants"]
    text = (
        f"- **B1** ({b1['ratio_1']:.2f} / {b1['ratio_4']:.2f}): the filter without nginx costs "
        f"{v['direct-session']['1']['ratio']:.2f} (1 client) and "
        f"{v['direct-session']['4']['ratio']:.2f} (4 clients); the Lua filter returning at once "
        f"(trusted user) already {v['direct-trusted']['1']['ratio']:.2f} / "
        f"{v['direct-trusted']['4']['ratio']:.2f}. The service is asked about once per session "
        "and 5 s (its CPU per request is a few µs): the cost is Orthanc running a Lua function "
        "under its single Lua lock for every request."
    )
    if "python-filter" in v:
        text += (
            f" An orthanc-python filter returning True costs "
            f"{v['python-filter']['1']['ratio']:.2f} / {v['python-filter']['4']['ratio']:.2f} "
            "on the same measure."
        )
    return text


def _b2_beside_limits(b2):
    """The runs beside the figure that missed their target, or "" if none did."""
    beside = [
        n
        for n, r in b2.get("runs", {}).items()
        if n not in b2.get("headline", []) and not r.get("met")
    ]
    if not beside:
        return ""
    return (
        "- **B2, runs beside the figure** that missed its target: "
        + "; ".join(
            f"{n} {b2['runs'][n]['rate']:.0f}/s, p99 {_num(b2['runs'][n]['p99_ms'], '.1f')} ms, "
            + (
                f"with the machine busy only {b2['runs'][n]['machine_busy_cores']} of "
                f"{os.cpu_count()} cores (waiting, not computing: seen now and then on this "
                "shared machine, not explained by the run)"
                # Under 3/4 of the cores busy, the run waited rather than computed.
                if b2["runs"][n].get("machine_busy_cores", 2) < 0.75 * (os.cpu_count() or 2)
                else f"{b2['runs'][n]['cpu_ms_per_decision']['service']:.2f} ms of service CPU "
                "per decision on a saturated machine"
            )
            for n in beside
        )
        + "."
    )


def _b2_limits(b2):
    missed = [n for n in b2.get("headline", []) if not b2["runs"][n]["met"]]
    text = "- **B2**: "
    for name in missed:
        r = b2["runs"][name]
        cpu_ms = r.get("cpu_ms_per_decision", {}).get("service")
        text += (
            f"{name} {r['rate']:.0f}/s, p99 {_num(r['p99_ms'], '.1f')} ms, "
            f"{r['errors']} errors"
            + (
                f", {cpu_ms:.2f} ms of service CPU per decision "
                f"(two cores give at most ~{2000 / cpu_ms:.0f}/s)"
                if cpu_ms
                else ""
            )
            + ". "
        )
    prof = b2.get("profile") or {}
    bd = prof.get("breakdown") or {}
    named = {k.split(" (")[0]: v for k, v in bd.get("parts_us", {}).items()}
    if named:
        text += (
            "In-process, single-threaded, one decision takes "
            f"{named.get('whole request', 0):.0f} µs through the WSGI stack: the session "
            f"lookup {named.get('session lookup', 0):.0f} µs, the decision "
            f"{named.get('decision', 0):.0f} µs, over "
            f"{bd.get('sql_statements_per_decision', 0)} SQL statements. "
        )
    cats = {r["where"]: r["share"] for r in prof.get("by_category", [])}
    if cats:
        text += (
            "py-spy on the workers: "
            + ", ".join(f"{where} {share * 100:.0f} %" for where, share in list(cats.items())[:5])
            + ". "
        )
    text += (
        "p99 on a closed loop is queueing: 4 clients, 4 workers, and the clients "
        "themselves on the same 2 cores, with others' work besides."
    )
    return text


# -- chart.png: six panels, one function each --------------------------------


def chart(results, targets, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    fig.suptitle(
        "Orthanc patient access: authorization cost, measured side by side"
        + (" (--quick)" if results["quick"] else ""),
        fontsize=13,
    )
    _chart_b1(axes[0][0], results.get("B1"))
    _chart_b2(axes[0][1], results.get("B2"))
    _chart_b3(axes[0][2], results.get("B3"))
    _chart_b4(axes[1][0], results.get("B4"))
    _chart_b5(axes[1][1], results.get("B5"))
    _chart_b1_latency(axes[1][2], results.get("B1"))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _no_data(ax, title):
    ax.set_title(title)
    ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _color(met):
    return "#3a7d44" if met else "#c0392b"


B1_SHORT = {
    "nginx": "nginx",
    "direct-session": "no\nnginx",
    "direct-trusted": "Lua\nreturns",
    "python-filter": "Python\nreturns",
}


def _chart_b1(ax, b1):
    if not (b1 and "variants" in b1):
        _no_data(ax, "B1 viewer load")
        return
    target = b1["target"]
    labels, values = [], []
    for variant, entries in b1["variants"].items():
        for clients, e in entries.items():
            labels.append(f"{B1_SHORT[variant]}\n{clients} cl.")
            values.append(e["ratio"])
    bars = ax.bar(
        labels,
        values,
        # The first two bars (nginx, 1 and 4 clients) are the figure.
        color=[_color(v <= target) if i < 2 else "#7f8c8d" for i, v in enumerate(values)],
    )
    ax.axhline(target, color="k", ls="--", lw=1, label=f"target ≤ {target:g}")
    ax.axhline(1.0, color="#999", lw=0.8)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_ylim(0, max(values + [target]) * 1.25)
    ax.set_title("B1 viewer load: time project ÷ plain\n(green/red: the figure; grey: breakdown)")
    ax.legend(fontsize=8, loc="upper right")
    ax.tick_params(axis="x", labelsize=8)


B2_SHORT = {
    "lua-sqlite": "Lua endpoint\nSQLite",
    "lua-sqlite-ct": "Lua endpoint\nCT study",
    "webhook-sqlite": "webhook\nSQLite",
    "lua-postgresql": "Lua endpoint\nPostgreSQL",
    "webhook-postgresql": "webhook\nPostgreSQL",
    "webhook-sqlite-viewers": "webhook\nSQLite\n4 viewers",
    "webhook-postgresql-viewers": "webhook\nPostgreSQL\n4 viewers",
}


def _chart_b2(ax, b2):
    if not (b2 and b2.get("runs")):
        _no_data(ax, "B2 decisions")
        return
    names = list(b2["runs"])
    rates = [b2["runs"][n]["rate"] for n in names]
    p99 = [b2["runs"][n]["p99_ms"] for n in names]
    headline = set(b2.get("headline", []))
    bars = ax.bar(
        [B2_SHORT.get(n, n) for n in names],
        rates,
        color=[_color(b2["runs"][n]["met"]) if n in headline else "#95a5a6" for n in names],
    )
    ax.bar_label(
        bars,
        labels=[f"{r:.0f}/s\np99 {_num(q, '.1f')} ms" for r, q in zip(rates, p99, strict=True)],
        fontsize=8,
    )
    floors = sorted({b2["runs"][n]["target"]["rate"] for n in headline})
    for floor in floors:
        ax.axhline(floor, color="k", ls="--", lw=1, label=f"target ≥ {floor:,}/s")
    ax.set_ylim(0, max(rates + floors) * 1.3)
    ax.set_title("B2 decisions per second, 4 clients\n(green/red: the figure; grey: beside it)")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8)


def _chart_b3(ax, b3):
    if not (b3 and b3.get("rounds")):
        _no_data(ax, "B3 ingest")
        return
    # A round without a ratio (cut short) is drawn as 0, labelled as a round.
    ratios = [r.get("ratio") or 0.0 for r in b3["rounds"]] + [b3.get("ratio") or 0.0]
    labels = [f"round {i}" for i in range(1, len(ratios))] + ["median"]
    bars = ax.bar(labels, ratios, color=["#95a5a6"] * (len(ratios) - 1) + [_color(b3["met"])])
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.axhline(0.95, color="k", ls="--", lw=1, label="target ≥ 0.95")
    ax.set_ylim(0, max(ratios + [1.0]) * 1.2)
    ax.set_title(f"B3 ingest rate project ÷ plain ({b3['slices']} slices)")
    ax.legend(fontsize=8, loc="lower right")


def _chart_b4(ax, b4):
    if not (b4 and b4.get("samples_s")):
        _no_data(ax, "B4 stable → visible")
        return
    ms = [s * 1000 for s in b4["samples_s"]]
    bars = ax.bar(
        [f"study {i}" for i in range(1, len(ms) + 1)], ms, color=[_color(m <= 1000) for m in ms]
    )
    ax.bar_label(bars, fmt="%.0f ms", fontsize=8)
    ax.axhline(1000, color="k", ls="--", lw=1, label="target ≤ 1 s")
    ax.set_ylim(0, max(ms + [1000]) * 1.2)
    ax.set_title("B4 stable → listed for staff with login")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)


def _chart_b5(ax, b5):
    if not (b5 and b5.get("owasp")):
        _no_data(ax, "B5 password verification")
        return
    labels = [f"{o['m_kib'] // 1024} MiB\nt={o['t']}" for o in b5["owasp"]]
    values = [o["p50_ms"] for o in b5["owasp"]]
    bars = ax.bar(
        labels, values, color=["#2c6fbb" if o["chosen"] else "#95a5a6" for o in b5["owasp"]]
    )
    ax.bar_label(bars, fmt="%.1f", fontsize=8)
    ax.axhline(100, color="k", ls="--", lw=1, label="target ≤ 100 ms")
    ax.set_ylim(0, max(values + [100]) * 1.2)
    ax.set_title("B5 Argon2id verify p50 (ms), OWASP minimums\n(blue: the project's choice)")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", labelsize=8)


def _chart_b1_latency(ax, b1):
    """p50 and p99 per request of the figure's rows (nginx), side by side."""
    if not (b1 and "variants" in b1):
        _no_data(ax, "B1 latency")
        return
    e = b1["variants"]["nginx"]
    groups = list(e)
    x = range(len(groups))
    w = 0.2
    for k, (side, stat, col) in enumerate(
        (
            ("project", "p50_ms", "#2c6fbb"),
            ("plain", "p50_ms", "#95a5a6"),
            ("project", "p99_ms", "#1b3f6b"),
            ("plain", "p99_ms", "#5d6d6e"),
        )
    ):
        ax.bar(
            [i + (k - 1.5) * w for i in x],
            [e[g][side][stat] for g in groups],
            w,
            label=f"{side} {stat[:3]}",
            color=col,
        )
    ax.set_xticks(list(x), [f"{g} client(s)" for g in groups])
    ax.set_ylabel("ms per request")
    ax.set_title("B1 latency per request through nginx")
    ax.legend(fontsize=8)
