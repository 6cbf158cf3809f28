"""gunicorn settings of the service (used by deploy.trial and the Dockerfile)."""

import logging

# Every request Orthanc serves waits for a decision (under its Lua lock, with
# the Lua filter). One thread per worker process, and more processes
# (site.json `service_workers`, 4 by default): threads of one process share
# its GIL, and two decisions in one process take turns. Bench B2, 4 clients
# on 2 cores: 4 workers x 1 thread gave p99 2.3-2.5 ms, 4 x 2 threads 3.3 ms,
# 2 x 4 threads 4.0-4.5 ms, at the same rate. nginx buffers the browsers'
# requests and answers, so a slow phone never holds a worker.
# gthread, but each request answered on the worker's own thread
# (authsvc/gunicorn_worker.py: the hand-off to a pool thread and back cost a
# fifth of a decision's CPU).
worker_class = "authsvc.gunicorn_worker.OneThreadWorker"
threads = 1
timeout = 30
graceful_timeout = 10
# No access log: URLs of the API can name patients.
accesslog = None
loglevel = "info"
# Several stacks (a test run beside `make run`) must not share one socket.
control_socket_disable = True


def post_worker_init(worker):
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    # Each worker runs the ingest thread; a file lock lets one pass run at a time.
    services = worker.wsgi.extensions["authsvc"]
    services.ingest_worker.start()
    # The audit chain's head, outside the database, every
    # AUDIT_CHECKPOINT_SECONDS (one worker writes it) ...
    services.audit_checkpoints.start()


def worker_exit(server, worker):
    # ... and when a worker stops (the newest entries are then checkpointed).
    from authsvc import audit

    # The decisions' study_access entries still in memory go in first.
    audit.access_notes.flush()
    services = worker.wsgi.extensions["authsvc"]
    services.audit_checkpoints.run_once("shutdown")
