"""One error type that renders itself as JSON; nothing internal reaches a client."""

import logging

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

    def response(self):
        return jsonify(error=self.code, message=self.message), self.status, self.headers


def register(app):
    @app.errorhandler(ApiError)
    def _api_error(exc):
        return exc.response()

    @app.errorhandler(HTTPException)
    def _http_error(exc):
        return jsonify(error=exc.name.lower().replace(" ", "_"),
                       message=exc.description), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc):
        log.exception("unhandled error")
        return jsonify(error="internal_error",
                       message="The service failed; the error is in its log."), 500
