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
    lean: bool = False  # the raw-socket client (small answers with Content-Length)


@dataclass
class Result:
    latencies: list = field(default_factory=list)  # seconds
    wall: float = 0.0
    errors: int = 0
    first_error: str = ""
    count: int = 0

    @property
    def rate(self):
        return self.count / self.wall if self.wall else 0.0

    def p(self, q):
        return percentile(self.latencies, q)


class _Plain:
    """http.client on one keep-alive connection: any answer, any size."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()

    @staticmethod
    def encode(method, path, headers, body):
        return method, path, headers, body

    def ask(self, request):
        method, path, headers, body = request
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        return response.status, data, response.getheader("Connection", "").lower() == "close"

    def close(self):
        self.conn.close()


class _Lean:
    """One keep-alive HTTP/1.1 connection for answers that carry a
    Content-Length (no chunked answers, no 1xx); requests pre-encoded."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    @staticmethod
    def encode(method, path, headers, body):
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")

    def ask(self, raw):
        self.sock.sendall(raw)
        buf = self.buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            buf += self._recv()
        head = buf[:end].decode("latin-1")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find("\r\ncontent-length:")
        if at < 0:
            raise ConnectionError(f"no Content-Length in the answer: {head[:200]!r}")
        stop = lower.find("\r\n", at + 2)
        length = int(lower[at + 17 : stop if stop > 0 else None])
        total = end + 4 + length
        while len(buf) < total:
            buf += self._recv()
        self.buf = buf[total:]
        return status, buf[end + 4 : total], "\r\nconnection: close" in lower

    def _recv(self):
        part = self.sock.recv(65536)
        if not part:
            raise ConnectionError("closed by the server")
        return part

    def close(self):
        self.sock.close()


def run_client(job):
    kind = _Lean if job.lean else _Plain
    items = [(kind.encode(m, p, h, b), expect, f"{m} {p}") for m, p, h, b, expect in job.requests]
    while time.time() < job.start_at:
        time.sleep(min(0.01, max(0.0, job.start_at - time.time())))
    conn = kind(job.port)
    latencies, errors, first_error = [], 0, ""
    started = time.time()
    deadline = started + job.duration
    i, n = 0, len(items)
    clock = time.perf_counter
    while (time.time() < deadline) if job.duration else (i < n):
        request, expect, what = items[i % n]
        i += 1
        t0 = clock()
        try:
            status, data, closing = conn.ask(request)
        except (http.client.HTTPException, OSError):
            # The server closed a kept-alive connection: reconnect, retry once.
            conn.close()
            conn = kind(job.port)
            t0 = clock()
            status, data, closing = conn.ask(request)
        latencies.append(clock() - t0)
        if status != 200 or (expect is not None and expect not in data):
            errors += 1
            if not first_error:
                first_error = f"{what}: {status} {data[:200]!r}"
        if closing:
            conn.close()
            conn = kind(job.port)
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
        for latencies, _started, ended, errors, first_error in self.pool.map(run_client, jobs):
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
