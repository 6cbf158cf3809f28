"""gunicorn's gthread worker, serving each request on the worker's own thread.

gthread's main thread waits on its connections (epoll) and hands each
request to a pool thread, which hands the connection back through a pipe
when the answer is sent: two thread switches, a pipe write and a read, and
the socket taken off and put back on the poller, for every request. With
one thread per worker (gunicorn_conf.py says why) the pool serves nothing in
parallel, so the hand-off bought nothing, and a decision costs about 0.5 ms
of CPU: two consecutive B2 runs on one machine measured 0.49 ms of the
service's CPU per decision with it and 0.39 ms without (SQLite 3,519 -> 4,392
decisions/s, PostgreSQL 2,255 -> 2,642/s).

What stays gthread's: accepting, keep-alive (an idle connection waits on the
poller, not on a thread), timeouts of idle connections, the graceful stop,
HTTP parsing and the WSGI call. What changes:
- a new connection waits on the poller until its first bytes arrive (gthread
  had its pool thread wait up to 5 s for them: one silent client held the
  worker's only thread that long);
- a request is read and answered on the main thread, so one that takes
  longer than gunicorn's `timeout` gets its worker restarted by the arbiter,
  as gunicorn's sync worker does (the service's requests wait for Orthanc at
  most its own timeouts; nginx buffers the browsers' requests, so a slow
  phone never holds a worker);
- `threads` has no effect: a worker serves one request at a time.
"""

import selectors
import time
from collections import deque
from concurrent import futures
from functools import partial

from gunicorn.workers.gthread import ThreadWorker


class OneThreadWorker(ThreadWorker):
    def init_process(self):
        self._ready = deque()  # connections with a request to read
        self._serving = False
        super().init_process()

    def enqueue_req(self, conn):
        """Called by gthread for a connection that has (or may have) a
        request: a new one, a kept-alive one that became readable, one whose
        last request's body drain read ahead into the next."""
        if not conn.initialized and not conn.data_ready:
            self._wait_for_first_bytes(conn)
            return
        self._ready.append(conn)
        if self._serving:
            # Called back from finish_request below (pipelined requests):
            # the loop below serves it next, with no recursion per request.
            return
        self._serving = True
        try:
            while self._ready:
                self._serve(self._ready.popleft())
        finally:
            self._serving = False

    def _serve(self, conn):
        done = futures.Future()
        # handle() answers the request, or the error page, and says whether
        # the connection stays open; it raises only what stops the worker.
        done.set_result(self.handle(conn))
        self.notify()  # the arbiter's heartbeat: a request may have taken a while
        self.finish_request(conn, done)

    def _wait_for_first_bytes(self, conn):
        # As gthread does with a connection whose first bytes did not come in
        # time (its "pending" connections): on the poller, closed after the
        # keep-alive timeout; on_pending_socket_readable serves it.
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(
            conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn)
        )
