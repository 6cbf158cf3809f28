"""Orthanc patient access: the authorization and portal service."""

import json
import os
from dataclasses import dataclass

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from .config import ConfigError, defaults, load_secrets
from .db import database, is_sqlite, open_database
from .ingest import IngestWorker
from .orthanc import OrthancClient
from .proxy import TrustedProxyFix
from .rules import RulesWatcher
from .sessions import SessionStore


class NoFlaskSession(SecureCookieSessionInterface):
    def open_session(self, app, request):
        return None  # Flask then hands out a null session that refuses writes


@dataclass
class Services:
    """What the blueprints share, built once per process by create_app."""

    secrets: dict
    sessions: SessionStore
    orthanc: OrthancClient
    ingest_worker: IngestWorker
    rules: RulesWatcher
    audit_checkpoints: object = None


def _check_secrets(secrets):
    missing = [n for n in ("secret_key", "ingest_secret") if len(secrets.get(n) or "") < 32]
    if missing:
        # No default secret that silently works in production.
        raise ConfigError(
            "missing or short secrets (need 32+ characters): "
            + ", ".join(missing)
            + " - set SECRETS_FILE or AUTHSVC_<NAME> (see docs/configuration.md)"
        )


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
    # The service's sessions are its own (sessions.py); Flask's cookie session
    # is never used, and opening it cost every request a serializer.
    app.session_interface = NoFlaskSession()

    # nginx is the only client; trust its X-Forwarded-* (one hop), nobody
    # else's: from a peer of TRUSTED_PROXIES that proves it is nginx.
    app.wsgi_app = TrustedProxyFix(
        app.wsgi_app, app.config["TRUSTED_PROXIES"], secrets.get("forwarded_secret")
    )

    open_database(app.config["DATABASE_URL"])
    from . import auditchain

    auditchain.configure(
        auditchain.derive_key(secrets),
        app.config["AUDIT_CHECKPOINT_FILE"]
        or os.path.join(app.config["DATA_DIR"], "audit-checkpoints.log"),
    )
    orthanc = OrthancClient(
        app.config["ORTHANC_URL"],
        app.config["ORTHANC_USERNAME"],
        secrets.get("orthanc_password", ""),
        app.config["ORTHANC_TIMEOUT_SECONDS"],
        token=secrets.get("service_token"),
    )
    app.extensions["authsvc"] = Services(
        secrets=secrets,
        sessions=SessionStore(
            secrets["secret_key"],
            app.config["SESSION_IDLE_MINUTES"],
            app.config["SESSION_MAX_HOURS"],
            app.config["SESSION_CACHE_SECONDS"],
        ),
        orthanc=orthanc,
        ingest_worker=None,
        rules=RulesWatcher(
            os.path.abspath(app.config["RULES_FILE"]),
            os.path.abspath(app.config["RULE_PASSWORDS_FILE"]),
            os.path.join(app.config["DATA_DIR"], "rules.lock"),
        ),
    )
    services = app.extensions["authsvc"]
    services.audit_checkpoints = auditchain.Checkpointer(app.config["AUDIT_CHECKPOINT_SECONDS"])
    services.ingest_worker = IngestWorker(
        orthanc,
        os.path.join(app.config["DATA_DIR"], "ingest.lock"),
        app.config["CHANGES_POLL_SECONDS"],
        before_pass=services.rules.check,
        reconcile_seconds=app.config["RECONCILE_SECONDS"],
    )

    from .web import refuse_nul_in_url

    app.before_request(refuse_nul_in_url)

    @app.before_request
    def _connect():
        database.connect(reuse_if_open=True)
        # Rules edited in their file apply from the next request on; the
        # plugin's questions (like the Lua filter's) never wait for a sync.
        services.rules.check(
            blocking=request.blueprint != "webhook", wake=services.ingest_worker.wake
        )

    keep_open = is_sqlite(app.config["DATABASE_URL"])

    @app.teardown_request
    def _close(exc):
        # SQLite's per-thread connection stays open for the next request;
        # PostgreSQL's goes back to its pool.
        if not keep_open and not database.is_closed():
            database.close()

    from . import api, cli, errors, gate, internal, pages, sharing, webhook
    from .fastpath import DecisionEndpoints

    # The questions every Orthanc request waits for skip Flask entirely:
    # nginx's check, the Lua filter's, the plugin's.
    endpoints = DecisionEndpoints(app.wsgi_app, app, close_after=not keep_open)
    endpoints.route(gate.GATE_PATH, gate.GATE)
    endpoints.route(internal.AUTHORIZE_PATH, internal.LUA_AUTHORIZE)
    for path in webhook.VALIDATE_PATHS:
        endpoints.route(path, webhook.VALIDATE)
    app.wsgi_app = endpoints
    # Every body read to its end and bounded (size, nesting, text) before any
    # route, the fast path's too, sees it (authsvc/limits.py).
    from .attach import UPLOAD_BODY_BYTES, UPLOAD_PATH
    from .limits import BodyGuard

    app.wsgi_app = BodyGuard(
        app.wsgi_app,
        app,
        quiet_paths=[internal.AUTHORIZE_PATH],
        larger=[(UPLOAD_PATH, UPLOAD_BODY_BYTES)],
    )
    errors.register(app)
    app.register_blueprint(api.bp)
    app.register_blueprint(sharing.bp)
    app.register_blueprint(internal.bp)
    app.register_blueprint(webhook.bp)
    app.register_blueprint(pages.bp)
    # The people's side: languages, the display copy of new passwords, pages.
    from . import access_log, attach, display, i18n, portal, slips, staff, unmatched

    i18n.init_app(app)
    display.init_app(app, secrets)
    app.register_blueprint(portal.bp)
    app.register_blueprint(access_log.bp)
    app.register_blueprint(attach.bp)
    app.register_blueprint(staff.bp)
    app.register_blueprint(slips.bp)
    app.register_blueprint(unmatched.bp)
    cli.register(app)
    return app
