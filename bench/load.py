"""HTTP load: N client processes (not threads: the client must not share a
GIL, and the machine has only 2 cores), each with one keep-alive connection,
started together. Returns per-request latencies and the wall time."""

import http.client
import multiprocessing
import time
from dataclasses import dataclass, field


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of a list; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def median(values):
    ordered = sorted(values)
    n = len(ordered)
    if not n:
        return None
    return ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@dataclass
class Job:
    """What one client does: `requests` in order (once), or cycled until
    `duration` seconds have passed. A request is (method, path, headers,
    body, expect) where `expect` is bytes the answer must contain (or None)
    and the status must be 200."""
    port: int
    requests: list
    duration: float = 0.0
    start_at: float = 0.0


@dataclass
class Result:
    latencies: list = field(default_factory=list)   # seconds
    wall: float = 0.0
    errors: int = 0
    first_error: str = ""
    count: int = 0

    @property
    def rate(self):
        return self.count / self.wall if self.wall else 0.0

    def p(self, q):
        return percentile(self.latencies, q)


def _connect(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.connect()
    return conn


def _one(conn, method, path, headers, body):
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    return response.status, data, response.getheader("Connection", "")


def run_client(job):
    while time.time() < job.start_at:
        time.sleep(min(0.01, max(0.0, job.start_at - time.time())))
    conn = _connect(job.port)
    latencies, errors, first_error = [], 0, ""
    started = time.time()
    deadline = started + job.duration
    i, n = 0, len(job.requests)
    while True:
        if job.duration:
            if time.time() >= deadline:
                break
        elif i >= n:
            break
        method, path, headers, body, expect = job.requests[i % n]
        i += 1
        t0 = time.perf_counter()
        try:
            status, data, connection = _one(conn, method, path, headers, body)
        except (http.client.HTTPException, OSError):
            # The server closed a kept-alive connection: reconnect, retry once.
            conn.close()
            conn = _connect(job.port)
            t0 = time.perf_counter()
            status, data, connection = _one(conn, method, path, headers, body)
        latencies.append(time.perf_counter() - t0)
        if status != 200 or (expect is not None and expect not in data):
            errors += 1
            if not first_error:
                first_error = f"{method} {path}: {status} {data[:200]!r}"
        if connection.lower() == "close":
            conn.close()
            conn = _connect(job.port)
    ended = time.time()
    conn.close()
    return latencies, started, ended, errors, first_error


class Load:
    """A pool of client processes, forked once at start (before any thread)."""

    def __init__(self, processes=4):
        self.pool = multiprocessing.get_context("fork").Pool(processes)
        self.pids = [p.pid for p in self.pool._pool]

    def run(self, jobs):
        start_at = time.time() + 0.3
        for job in jobs:
            job.start_at = start_at
        result = Result()
        ends = []
        for latencies, started, ended, errors, first_error in self.pool.map(run_client, jobs):
            result.latencies.extend(latencies)
            result.errors += errors
            result.first_error = result.first_error or first_error
            ends.append(ended)
        result.count = len(result.latencies)
        result.wall = max(ends) - start_at
        return result

    def close(self):
        self.pool.terminate()
        self.pool.join()
