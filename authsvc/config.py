"""Settings of the service, declared once with defaults and help text.

Loaded in layers, as Flask does it: these defaults, then the JSON file named by
``AUTHSVC_CONFIG``, then ``AUTHSVC_*`` environment variables, then whatever a
test passes to ``create_app``.  Secrets are not settings: they come from the
JSON file named by ``SECRETS_FILE`` (mode 0600, outside the database) or from
``AUTHSVC_SECRET_KEY`` / ``AUTHSVC_INGEST_SECRET`` / ``AUTHSVC_ORTHANC_PASSWORD``.
The table of keys in docs/configuration.md is checked against ``SETTINGS`` by a test.
"""

import json
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: object
    help: str


SETTINGS = [
    Setting(
        "DATABASE_URL",
        "sqlite:///data/authsvc.sqlite3",
        "Where the service keeps studies, logins and sessions (peewee URL: "
        "sqlite:///path or postgresql://user@host/db).",
    ),
    Setting(
        "DATA_DIR", "data", "Folder for the service's lock files (shared by all gunicorn workers)."
    ),
    Setting("SECRETS_FILE", "", "JSON file with secret_key, ingest_secret and orthanc_password."),
    Setting(
        "AUDIT_CHECKPOINT_FILE",
        "",
        "Where the audit chain's head is appended (mode 0600), outside the "
        "database; empty: audit-checkpoints.log in DATA_DIR.",
    ),
    Setting(
        "AUDIT_CHECKPOINT_SECONDS",
        300,
        "How often the audit chain's head is checkpointed (also at shutdown); "
        "entries removed after the newest checkpoint cannot be detected.",
    ),
    Setting(
        "DISPLAY_KEY_FILE",
        "",
        "File holding only the display key, kept apart from the data folder "
        "and its backups (make run: a data-keys folder beside data/).",
    ),
    Setting(
        "ORTHANC_URL",
        "http://127.0.0.1:8042",
        "Orthanc's REST API as the service reaches it (not through nginx).",
    ),
    Setting(
        "ORTHANC_USERNAME",
        "authsvc",
        "Orthanc user of the service; the request filter lets it through.",
    ),
    Setting(
        "PUBLIC_URL",
        "http://127.0.0.1:8080",
        "The address patients and staff use (printed on slips).",
    ),
    Setting(
        "SESSION_COOKIE_NAME",
        "authsvc_session",
        "Cookie that carries the session token (the Lua filter reads it).",
    ),
    Setting("SESSION_IDLE_MINUTES", 30, "A session unused this long is over."),
    Setting("SESSION_MAX_HOURS", 12, "A session is over this long after login, used or not."),
    Setting(
        "DECISION_CACHE_SECONDS",
        5,
        "How long Orthanc's filter may reuse a grant; logout and revocation "
        "reach Orthanc routes within this time.",
    ),
    Setting(
        "SESSION_CACHE_SECONDS",
        0.5,
        "How long each service process may reuse a live session it looked up "
        "for an access decision (0: never). Ending a session reaches Orthanc "
        "within DECISION_CACHE_SECONDS plus this time.",
    ),
    Setting(
        "CHANGES_POLL_SECONDS",
        10,
        "How often the service reads Orthanc's /changes to catch up on "
        "studies it was not told about.",
    ),
    Setting(
        "RECONCILE_SECONDS",
        600,
        "How often the service compares Orthanc's list of studies with its own "
        "(also at start and after Orthanc was unreachable), for studies whose "
        "stable event never came (Orthanc stopped before they were stable).",
    ),
    Setting(
        "ORTHANC_TIMEOUT_SECONDS", 10, "Timeout of the service's own calls to Orthanc's REST API."
    ),
    Setting("ADMIN_USERNAME", "admin", "Name of the admin account created at first start."),
    Setting(
        "RULES_FILE",
        "data/rules.json",
        "Tag rules: the logins of physicians and institutions (JSON, // comments).",
    ),
    Setting(
        "RULE_PASSWORDS_FILE",
        "data/rule-passwords.json",
        "Hashes of the rule logins' passwords, written by `make rule-password`.",
    ),
    Setting(
        "TRUSTED_PROXIES",
        ["127.0.0.1", "::1"],
        "Addresses whose X-Forwarded-For/-Proto/-Host the service believes "
        "(nginx's); from any other peer those headers are ignored.",
    ),
    Setting(
        "MAX_BODY_BYTES",
        65536,
        "The longest request body the service reads (413 beyond it, in JSON; "
        "nginx refuses bodies over 1 MiB to the service's locations itself).",
    ),
    Setting(
        "MAX_JSON_DEPTH",
        32,
        "How deeply arrays and objects may nest in a JSON body (400 beyond it).",
    ),
    Setting(
        "SHARE_DEFAULT_DAYS", 7, "How long a patient's share lasts unless they choose otherwise."
    ),
    Setting("SHARE_MAX_DAYS", 30, "The longest a patient may make a share last."),
    # The people's side: pages, slips, languages.
    Setting(
        "HOSPITAL_NAME",
        "Hospital",
        "The hospital's name, printed on the patients' slips and shown on every page.",
    ),
    Setting(
        "SPLASH_TEXT",
        {},
        "The warning of the first page and the slips, per language, e.g. "
        '{"es": "...", "en": "..."}; a language left out gets the built-in text.',
    ),
    Setting(
        "LOST_SLIP_TEXT",
        {},
        "What the login page tells a patient who lost their slip, per language, e.g. "
        '{"es": "...", "en": "..."}; a language left out gets the built-in text.',
    ),
    Setting(
        "DEFAULT_LANGUAGE",
        "es",
        "Language of the pages when the browser asks for none we have (es or en).",
    ),
    Setting("TIMEZONE", "America/Caracas", "Time zone of the times shown to staff (IANA name)."),
    Setting("DASHBOARD_POLL_SECONDS", 5, "How often the staff dashboard asks for new studies."),
]

# webhook_secret is optional: without it the plugin webhook refuses every call.
# service_token is for Orthanc with the Authorization plugin (docker): the
# service presents it as its own token, and its webhook grants it everything.
# forwarded_secret: what nginx sends in X-Authsvc-Proxy to have its
# X-Forwarded-For believed (authsvc/proxy.py). audit_key: the key of the
# audit log's HMAC chain (authsvc/auditchain.py), never in the database.
SECRET_NAMES = (
    "secret_key",
    "ingest_secret",
    "orthanc_password",
    "display_key",
    "webhook_secret",
    "service_token",
    "forwarded_secret",
    "audit_key",
)


def defaults():
    return {s.name: s.default for s in SETTINGS}


def coerce(name, raw):
    """Environment values are strings; give them the type of the default."""
    default = defaults()[name]
    if isinstance(default, bool):
        return raw.lower() in ("1", "true", "yes")
    if isinstance(default, int):
        return int(raw)
    return raw


def load_secrets(config):
    """Secrets from SECRETS_FILE, then from env; never from the settings file."""
    secrets = {}
    path = config.get("SECRETS_FILE")
    if path:
        with open(path, encoding="utf-8") as fh:
            secrets.update(json.load(fh))
    path = config.get("DISPLAY_KEY_FILE")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            secrets["display_key"] = fh.read().strip()
    for name in SECRET_NAMES:
        env = os.environ.get("AUTHSVC_" + name.upper())
        if env:
            secrets[name] = env
        # Docker secrets are files: AUTHSVC_<NAME>_FILE=/run/secrets/<name>.
        path = os.environ.get("AUTHSVC_" + name.upper() + "_FILE")
        if path:
            with open(path, encoding="utf-8") as fh:
                secrets[name] = fh.read().strip()
    return secrets


class ConfigError(RuntimeError):
    """The service cannot start safely with this configuration."""
