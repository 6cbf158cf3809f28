"""Orthanc patient access: the authorization and portal service."""

import json
import os
from dataclasses import dataclass

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from .config import ConfigError, defaults, load_secrets
from .db import database, open_database
from .ingest import IngestWorker
from .orthanc import OrthancClient
from .sessions import SessionStore


@dataclass
class Services:
    """What the blueprints share, built once per process by create_app."""
    secrets: dict
    sessions: SessionStore
    orthanc: OrthancClient
    ingest_worker: IngestWorker


def _check_secrets(secrets):
    missing = [n for n in ("secret_key", "ingest_secret") if len(secrets.get(n) or "") < 32]
    if missing:
        # No default secret that silently works in production.
        raise ConfigError("missing or short secrets (need 32+ characters): " + ", ".join(missing)
                          + " - set SECRETS_FILE or AUTHSVC_<NAME> (see README)")


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(defaults())
    path = os.environ.get("AUTHSVC_CONFIG")
    if path:
        app.config.from_file(os.path.abspath(path), load=json.load)
    app.config.from_prefixed_env("AUTHSVC")
    if test_config:
        app.config.update(test_config)

    secrets = load_secrets(app.config)
    _check_secrets(secrets)
    app.config["SECRET_KEY"] = secrets["secret_key"]

    # nginx is the only client; trust its X-Forwarded-* (one hop), nobody else's.
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)

    open_database(app.config["DATABASE_URL"])
    orthanc = OrthancClient(app.config["ORTHANC_URL"], app.config["ORTHANC_USERNAME"],
                            secrets.get("orthanc_password", ""),
                            app.config["ORTHANC_TIMEOUT_SECONDS"])
    app.extensions["authsvc"] = Services(
        secrets=secrets,
        sessions=SessionStore(secrets["secret_key"], app.config["SESSION_IDLE_MINUTES"],
                              app.config["SESSION_MAX_HOURS"]),
        orthanc=orthanc,
        ingest_worker=IngestWorker(orthanc,
                                   os.path.join(app.config["DATA_DIR"], "ingest.lock"),
                                   app.config["CHANGES_POLL_SECONDS"]),
    )

    @app.before_request
    def _connect():
        database.connect(reuse_if_open=True)

    @app.teardown_request
    def _close(exc):
        if not database.is_closed():
            database.close()

    from . import api, errors, internal, pages, cli
    errors.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(internal.bp)
    app.register_blueprint(pages.bp)
    cli.register(app)
    return app
