"""gunicorn settings of the service (used by authsvc.stack and the Dockerfile)."""

import logging

# The filter of Orthanc waits for our answers under its Lua lock: keep workers
# few and threads enough that a slow request never queues the decisions.
worker_class = "gthread"
threads = 4
timeout = 30
graceful_timeout = 10
# No access log: URLs of the API can name patients.
accesslog = None
loglevel = "info"
# Several stacks (a test run beside `make run`) must not share one socket.
control_socket_disable = True


def post_worker_init(worker):
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s")
    # Each worker runs the ingest thread; a file lock lets one pass run at a time.
    worker.wsgi.extensions["authsvc"].ingest_worker.start()
