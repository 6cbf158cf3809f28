"""The service's gunicorn worker class (authsvc/gunicorn_worker.py): each
request read and answered on the worker's own thread, with gthread's
keep-alive, pipelining and graceful stop kept. Real gunicorn, one worker,
on a probe app (tests/wsgi_probe.py)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from authsvc import gunicorn_conf
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.stack
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class",
            gunicorn_conf.worker_class,
            "--threads",
            str(gunicorn_conf.threads),
            "--workers",
            "1",
            "--graceful-timeout",
            "10",
            "--bind",
            f"127.0.0.1:{port}",
            "tests.wsgi_probe:app",
        ],
        cwd=REPO,
        stdout=open(tmp_path / "gunicorn.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def answers():
        try:
            return b"200 OK" in ask(port, [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])[0]
        except OSError:
            return False

    try:
        wait_for(answers, 30, what="gunicorn answering")
        yield port, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def read_answers(sock, n):
    """n HTTP answers with a Content-Length, in order."""
    buf, out = b"", []
    while len(out) < n:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            part = sock.recv(65536)
            if not part:
                raise ConnectionError(f"closed after {len(out)} answers")
            buf += part
            continue
        head = buf[:end].decode("latin-1")
        length = int(head.lower().split("content-length:", 1)[1].split("\r\n", 1)[0])
        while len(buf) < end + 4 + length:
            part = sock.recv(65536)
            if not part:
                raise ConnectionError("closed in an answer")
            buf += part
        out.append(buf[: end + 4 + length])
        buf = buf[end + 4 + length :]
    return out


def ask(port, requests, timeout=10):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(b"".join(requests))
        return read_answers(sock, len(requests))


def body(answer):
    return answer.split(b"\r\n\r\n", 1)[1].decode()


def test_a_request_is_answered_on_the_workers_own_thread(server):
    """No hand-off to a pool thread and back (two thread switches and a pipe
    per request: a fifth of a decision's CPU in bench B2)."""
    port, _ = server
    (answer,) = ask(port, [b"GET /thread HTTP/1.1\r\nHost: x\r\n\r\n"])
    assert body(answer).split()[1] == "main", answer


def test_a_silent_connection_does_not_hold_the_worker(server):
    """A client that connects and sends nothing waits on the poller: another
    client is answered at once (gthread's only thread waited 5 s for it)."""
    port, _ = server
    with socket.create_connection(("127.0.0.1", port)):
        time.sleep(0.2)  # accepted by the worker meanwhile
        started = time.monotonic()
        (answer,) = ask(port, [b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n"])
        took = time.monotonic() - started
    assert b"200 OK" in answer
    assert took < 1.0, f"answered after {took:.1f} s"


def test_one_connection_is_kept_alive_for_many_requests(server):
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        pids = set()
        for n in range(50):
            sock.sendall(f"GET /k{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            (answer,) = read_answers(sock, 1)
            assert body(answer).startswith(f"/k{n} main")
            pids.add(body(answer).split()[2])
    assert len(pids) == 1


def test_pipelined_requests_are_answered_in_order(server):
    """Requests sent back to back on one connection (the read-ahead path)
    are each answered, in order: 2,000 of them, no recursion per request."""
    port, _ = server
    requests = [f"GET /p{n} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for n in range(2000)]
    requests.insert(5, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    answers = ask(port, requests, timeout=30)
    paths = [body(a).split()[0] for a in answers]
    assert paths == [r.split(b" ")[1].decode() for r in requests]


def test_a_stop_lets_the_request_in_flight_finish(server):
    """SIGTERM to gunicorn while a request runs: it is answered, then the
    worker stops."""
    port, proc = server
    out = {}

    def slow():
        out["answer"] = ask(port, [b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n"])[0]

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGTERM)
    t.join(10)
    assert b"200 OK" in out.get("answer", b""), out
    assert proc.wait(timeout=15) == 0
