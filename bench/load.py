"""HTTP load: N client processes (not threads: the client must not share a
GIL, and the machine has only 2 cores), each with one keep-alive connection,
started together. Returns per-request latencies and the wall time.

Two clients: http.client (B1: any answer, any size), and a lean one for small
JSON answers (B2) that sends pre-encoded requests on a raw socket and reads
the answer by its Content-Length. The service's real client is Orthanc (C++,
libcurl); http.client cost 0.19 ms of CPU per request, a third of what the
service spends deciding, on the same two cores, and its share of the
machine showed up in the service's latency. The lean one costs a fraction
of that and still checks every answer."""

import http.client
import multiprocessing
import socket
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
    lean: bool = False   # the raw-socket client (small answers with Content-Length)


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


def _encode(method, path, headers, body):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


class _Lean:
    """One keep-alive HTTP/1.1 connection for answers that carry a
    Content-Length (no chunked answers, no 1xx)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def ask(self, raw):
        self.sock.sendall(raw)
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            part = self.sock.recv(65536)
            if not part:
                raise ConnectionError("closed by the server")
            buf += part
        head = buf[:end].decode("latin-1")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find("\r\ncontent-length:")
        if at < 0:
            raise ConnectionError(f"no Content-Length in the answer: {head[:200]!r}")
        stop = lower.find("\r\n", at + 2)
        length = int(lower[at + 17:stop if stop > 0 else None])
        total = end + 4 + length
        while len(buf) < total:
            part = self.sock.recv(65536)
            if not part:
                raise ConnectionError("closed by the server")
            buf += part
        self.buf = buf[total:]
        closing = "\r\nconnection: close" in lower
        return status, buf[end + 4:total], closing

    def close(self):
        self.sock.close()


def run_lean_client(job):
    raws = [(_encode(m, p, h, b), expect, f"{m} {p}") for m, p, h, b, expect in job.requests]
    while time.time() < job.start_at:
        time.sleep(min(0.01, max(0.0, job.start_at - time.time())))
    conn = _Lean(job.port)
    latencies, errors, first_error = [], 0, ""
    started = time.time()
    deadline = started + job.duration
    i, n = 0, len(raws)
    clock = time.perf_counter
    while (time.time() < deadline) if job.duration else (i < n):
        raw, expect, what = raws[i % n]
        i += 1
        t0 = clock()
        try:
            status, data, closing = conn.ask(raw)
        except OSError:
            # The server closed a kept-alive connection: reconnect, retry once.
            conn.close()
            conn = _Lean(job.port)
            t0 = clock()
            status, data, closing = conn.ask(raw)
        latencies.append(clock() - t0)
        if status != 200 or (expect is not None and expect not in data):
            errors += 1
            if not first_error:
                first_error = f"{what}: {status} {data[:200]!r}"
        if closing:
            conn.close()
            conn = _Lean(job.port)
    ended = time.time()
    conn.close()
    return latencies, started, ended, errors, first_error


def run_client(job):
    if job.lean:
        return run_lean_client(job)
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
