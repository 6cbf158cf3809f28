"""A tiny WSGI app for tests/test_gunicorn_worker.py: it says which thread
served it, sleeps when asked, and answers with its worker's pid, so that a
test sees how gunicorn's worker class (authsvc/gunicorn_worker.py) serves
requests, without the service's own start-up around it."""

import os
import threading
import time


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or "0.5"))
    if path == "/echo":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        environ["wsgi.input"].read(length)
    thread = "main" if threading.current_thread() is threading.main_thread() else "other"
    body = f"{path} {thread} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
