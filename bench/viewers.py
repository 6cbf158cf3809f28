"""Concurrent viewers against the whole stack (nginx -> Lua filter -> Orthanc,
and the service's API): each client is a logged-in patient paging through
their study the way the portal's viewer does. Used by tests/test_load.py (a
short run in CI) and by `python -m bench.viewers` (the 60 s run).

Every answer must be 200: anything else is counted as an error, with its
status, so that a run says exactly what failed."""

import argparse
import collections
import threading
import time

import requests


def viewer_urls(study, series, instances):
    """What one pass of the viewer asks for: the study's list, its series,
    then every slice as a rendered image and as the DICOM file."""
    urls = ["/api/studies", f"/orthanc/studies/{study}", f"/orthanc/series/{series}"]
    for instance in instances:
        urls.append(f"/orthanc/instances/{instance}/preview")
        urls.append(f"/orthanc/instances/{instance}/file")
    return urls


def run_viewers(base_url, sessions, clients, seconds):
    """`clients` threads, thread n being viewer `sessions[n % len(sessions)]`
    (a session cookie and the URLs its patient's viewer asks for), each
    fetching its URLs in a loop for `seconds`. Returns a summary."""
    deadline = time.monotonic() + seconds
    lock = threading.Lock()
    errors = collections.Counter()
    latencies = []
    done = [0]

    def viewer(n):
        cookie, urls = sessions[n % len(sessions)]
        http = requests.Session()
        http.cookies.set("authsvc_session", cookie)
        mine = []
        while time.monotonic() < deadline:
            for url in urls:
                start = time.monotonic()
                try:
                    status = http.get(base_url + url, timeout=30).status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                mine.append(time.monotonic() - start)
                if status != 200:
                    with lock:
                        errors[(status, url.split("/")[2] if url.count("/") > 1 else url)] += 1
                if time.monotonic() >= deadline:
                    break
        with lock:
            latencies.extend(mine)
            done[0] += len(mine)

    threads = [threading.Thread(target=viewer, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    latencies.sort()

    def pct(p):
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
        )

    return {
        "requests": done[0],
        "errors": dict(errors),
        "error_count": sum(errors.values()),
        "seconds": elapsed,
        "rate": done[0] / elapsed,
        "p50_ms": pct(0.5),
        "p99_ms": pct(0.99),
    }


def main():
    """The longer run: start the stack, send a study, 20 viewers for 60 s."""
    import tempfile
    from pathlib import Path

    from tests.load_world import prepared_world

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, prepared_world(Path(tmp)) as world:
        result = run_viewers(world["base"], world["sessions"], args.clients, args.seconds)
    print(
        f"{args.clients} viewers, {result['seconds']:.0f} s: {result['requests']} requests, "
        f"{result['rate']:.0f}/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
        f"errors {result['error_count']} {result['errors'] or ''}"
    )
    return 1 if result["error_count"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
