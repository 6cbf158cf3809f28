"""One error type that renders itself as JSON; nothing internal reaches a client."""

import logging

import peewee
from flask import jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status, code, message, headers=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self):
        """The error body every route answers with, Flask's and the fast path's."""
        return {"error": self.code, "message": self.message}

    def response(self):
        return jsonify(self.body()), self.status, self.headers


def register(app):
    @app.errorhandler(ApiError)
    def _api_error(exc):
        return exc.response()

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        return jsonify(error=exc.name.lower().replace(" ", "_"), message=exc.description), exc.code

    @app.errorhandler(peewee.OperationalError)
    @app.errorhandler(peewee.InterfaceError)
    def _database_unavailable(exc):
        # Locked past the busy timeout, disk full, server gone: the request's
        # transaction was rolled back whole. Say so plainly; log the detail.
        log.error("database unavailable: %s", exc)
        return (
            jsonify(
                error="database_unavailable",
                message="The service's database is busy or full. Nothing was "
                "saved; try again in a moment.",
            ),
            503,
            {"Retry-After": "5"},
        )

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error")
        return jsonify(
            error="internal_error", message="The service failed; the error is in its log."
        ), 500
