"""The site's configuration, made from site.json: its defaults, its secrets, the
display key's file, and what Orthanc and the service are given. `make run`
(deploy/trial.py) and `make install` (deploy/install.py) build with the same
functions, so a trial and a server differ only in their paths."""

import json
import os
import re
import secrets as pysecrets
import stat
from pathlib import Path

from authsvc.decision.routes import lua_cache_grammar

REPO = Path(__file__).resolve().parent.parent

SITE_DEFAULTS = {
    "http_address": "127.0.0.1",
    "http_port": 8080,
    "public_url": "",
    # HTTPS (docs/install.md, "HTTPS"): PEM files of a certificate and its key; when
    # both are set nginx serves HTTPS on https_port, and http_port redirects.
    "https_port": 8443,
    "tls_certificate": "",
    "tls_key": "",
    "orthanc_http_port": 8042,
    "dicom_port": 4242,
    "dicom_aet": "ORTHANC",
    "stable_age_seconds": 60,
    "service_port": 8081,
    "service_workers": 4,
    # AE title -> host, port: the only modalities allowed to send (C-STORE)
    # and echo; none of them may query or retrieve unless "allow_query" is true.
    "modalities": {"STORESCU": {"host": "127.0.0.1", "port": 104}},
    # The service's database: "" for SQLite in the data folder, or a
    # PostgreSQL URL (postgresql://user@host:port/db; the password, if any,
    # in ~/.pgpass of the user running it).
    "database_url": "",
    # Orthanc's index in PostgreSQL (Debian's orthanc-postgresql) instead of
    # SQLite: {"host", "port", "database", "username"}; the password, if any,
    # is secrets.json's "orthanc_db_password". null: SQLite.
    "orthanc_postgresql": None,
    # The file of the display key (it decrypts the passwords kept for their
    # slips): outside the data folder and its backups. "": <data>-keys/display-key.
    "display_key_file": "",
    # Settings of the service itself (see the table in docs/configuration.md), e.g.
    # {"SESSION_IDLE_MINUTES": 30}.
    "authsvc": {},
}

SECRET_NAMES = (
    "secret_key",
    "ingest_secret",
    "orthanc_password",
    "proxy_password",
    "forwarded_secret",
    "audit_key",
)
# What every child and command of the launcher creates is its owner's only
# (database, WAL, Orthanc's storage and caches, logs, backups).
UMASK = 0o077
SERVICE_USER = "authsvc"
POSTGRESQL_INDEX_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"
LUA_SCRIPTS = ("stable-study.lua", "request-filter.lua")
PROXY_USER = "nginx"


def write_file(path, text, mode=0o644):
    """Write a whole file atomically (a reader sees the old one or the new
    one), with its mode from the start: a secret is never readable by
    others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(
        os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "w", encoding="utf-8"
    ) as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def load_site(data_dir, overrides=None):
    """site.json, created with the defaults on the first run."""
    path = data_dir / "site.json"
    if not path.exists():
        write_file(path, json.dumps(SITE_DEFAULTS, indent=2) + "\n", mode=0o600)
    site = dict(SITE_DEFAULTS)
    site.update(json.loads(path.read_text(encoding="utf-8")))
    site.update(overrides or {})
    unknown = set(site) - set(SITE_DEFAULTS)
    if unknown:
        raise SystemExit(f"{path}: unknown keys {sorted(unknown)} (see docs/configuration.md)")
    if bool(site["tls_certificate"]) != bool(site["tls_key"]):
        raise SystemExit(f"{path}: tls_certificate and tls_key go together (see docs/install.md)")
    if not site["public_url"]:
        if tls_enabled(site):
            site["public_url"] = f"https://{site['http_address']}:{site['https_port']}"
        else:
            site["public_url"] = f"http://{site['http_address']}:{site['http_port']}"
    return site


def tls_enabled(site):
    return bool(site.get("tls_certificate") and site.get("tls_key"))


def load_secrets(data_dir):
    """secrets.json, made once with random values; never printed."""
    path = data_dir / "secrets.json"
    secrets = json.loads(path.read_text()) if path.exists() else {}
    missing = [n for n in SECRET_NAMES if not secrets.get(n)]
    if missing:
        for name in missing:
            secrets[name] = pysecrets.token_urlsafe(32)
        write_file(path, json.dumps(secrets, indent=2) + "\n", mode=0o600)
    return secrets


def display_key_file(site, data_dir):
    if site["display_key_file"]:
        return (data_dir / site["display_key_file"]).resolve()
    return data_dir.parent / (data_dir.name + "-keys") / "display-key"


def ensure_display_key(path, data_dir):
    """The display key in its own file (mode 0600, folder 0700), made once;
    one left in secrets.json by an earlier version is moved there."""
    if path.resolve().is_relative_to(data_dir.resolve()):
        raise SystemExit(
            f"display_key_file {path} is inside the data folder: the key "
            "must not travel with the database and its backups"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    secrets_path = data_dir / "secrets.json"
    secrets = json.loads(secrets_path.read_text()) if secrets_path.exists() else {}
    old = secrets.pop("display_key", None)
    if not path.exists():
        write_file(path, (old or pysecrets.token_urlsafe(32)) + "\n", mode=0o600)
    os.chmod(path, 0o600)
    if old is not None:
        write_file(secrets_path, json.dumps(secrets, indent=2) + "\n", mode=0o600)
    return path


def tighten(data_dir):
    """Files under the data folder made by earlier versions (or copied with
    the default umask) lose every right of group and others; folders keep at
    most the right to pass through (nginx's workers reach nginx/tmp)."""
    passage = {data_dir, data_dir / "nginx"}
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(root) / name
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            keep = 0o711 if path in passage else 0o700
            if mode & ~keep & 0o777:
                os.chmod(path, mode & keep)
    os.chmod(data_dir, 0o711)


def orthanc_has(path):
    """Whether the Orthanc that runs sees `path` (a plugin), in its own root
    folder if AUTHSVC_ORTHANC_ROOT names one."""
    return os.path.exists(os.environ.get("AUTHSVC_ORTHANC_ROOT", "").rstrip("/") + path)


def orthanc_local_config(site, secrets, data_dir, lua_dir=None):
    """local.json: Orthanc's files under data_dir/orthanc/, its Lua scripts in
    lua_dir (default data_dir/orthanc/lua, where `make run` copies them)."""
    lua_dir = lua_dir or data_dir / "orthanc" / "lua"
    modalities = {}
    for aet, m in site["modalities"].items():
        allow_query = bool(m.get("allow_query", False))
        modalities[aet] = {
            "AET": aet,
            "Host": m["host"],
            "Port": int(m["port"]),
            "AllowEcho": True,
            "AllowStore": True,
            "AllowFind": allow_query,
            "AllowMove": allow_query,
            "AllowGet": allow_query,
            "AllowStorageCommitment": False,
        }
    plugins = [
        p
        for p in (
            "/usr/share/orthanc/plugins/libOrthancWebViewer.so",
            "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
        )
        if orthanc_has(p)
    ]
    extra = {}
    pg = site.get("orthanc_postgresql")
    if pg:
        if not orthanc_has(POSTGRESQL_INDEX_PLUGIN):
            raise SystemExit(
                "orthanc_postgresql is set but Debian's orthanc-postgresql "
                "is not installed (apt-get install orthanc-postgresql)"
            )
        plugins.append(POSTGRESQL_INDEX_PLUGIN)
        extra["PostgreSQL"] = {
            "EnableIndex": True,
            "EnableStorage": False,
            "Lock": True,
            "Host": pg.get("host", "127.0.0.1"),
            "Port": int(pg.get("port", 5432)),
            "Database": pg["database"],
            "Username": pg["username"],
            "Password": secrets.get("orthanc_db_password", ""),
        }
    return {
        **extra,
        "StorageDirectory": str(data_dir / "orthanc" / "storage"),
        "IndexDirectory": str(data_dir / "orthanc" / "storage"),
        "HttpPort": int(site["orthanc_http_port"]),
        "DicomPort": int(site["dicom_port"]),
        "DicomAet": site["dicom_aet"],
        "StableAge": int(site["stable_age_seconds"]),
        "DicomModalities": modalities,
        "Plugins": plugins,
        # Copies (Stack.configure's, the install's), not the repository's.
        "LuaScripts": [str(lua_dir / name) for name in LUA_SCRIPTS],
        "RegisteredUsers": {
            SERVICE_USER: secrets["orthanc_password"],
            PROXY_USER: secrets["proxy_password"],
        },
        "WebViewer": {"CachePath": str(data_dir / "orthanc" / "webviewer-cache")},
        "PatientAccess": {
            "ServiceUrl": f"http://127.0.0.1:{site['service_port']}",
            "Secret": secrets["ingest_secret"],
            "ProxyUser": PROXY_USER,
            "TrustedUsers": [SERVICE_USER],
            "CookieName": cookie_name(site),
            # What the filter's cache may answer: the service's own route grammar.
            **lua_cache_grammar(),
        },
    }


def cookie_name(site):
    name = site["authsvc"].get("SESSION_COOKIE_NAME", "authsvc_session")
    if not re.fullmatch(r"[A-Za-z0-9_]{1,64}", str(name)):
        # It becomes an nginx variable ($cookie_<name>) and a Lua setting.
        raise SystemExit("SESSION_COOKIE_NAME: letters, digits and _ only")
    return name


def authsvc_config(site, data_dir, **paths):
    """The service's settings; `paths` (e.g. SECRETS_FILE) replace the data
    folder's defaults, and site.json's "authsvc" settings come last."""
    config = {
        "DATABASE_URL": site["database_url"] or f"sqlite:///{data_dir / 'authsvc.sqlite3'}",
        "DATA_DIR": str(data_dir),
        "SECRETS_FILE": str(data_dir / "secrets.json"),
        "DISPLAY_KEY_FILE": str(display_key_file(site, data_dir)),
        "ORTHANC_URL": f"http://127.0.0.1:{site['orthanc_http_port']}",
        "ORTHANC_USERNAME": SERVICE_USER,
        "PUBLIC_URL": site["public_url"],
        "RULES_FILE": str(data_dir / "rules.json"),
        "RULE_PASSWORDS_FILE": str(data_dir / "rule-passwords.json"),
    }
    config.update({name: str(value) for name, value in paths.items()})
    config.update(site["authsvc"])
    return config
