"""Runs the whole system on one machine: Orthanc (Debian's package), the
service under gunicorn, and nginx as the single HTTP entry.

`python -m authsvc.stack run [--data-dir DIR]` is what `make run` calls; the
integration tests drive the same `Stack` class with their own folder and ports.
Under `run`, a Supervisor starts a child that died again (with a backoff),
leaving the others running. `doctor` is `make doctor` (authsvc/doctor.py).

Everything it needs lives in the data folder (outside git):
  site.json      the site's settings, written with defaults on the first run
                 and edited by the hospital's IT person (JSON only);
  secrets.json   random secrets made on the first run (mode 0600);
                 the display key alone lives outside it, in <data>-keys/;
  orthanc/, nginx/, authsvc.json, logs/   generated at every start from those two
                 (orthanc/lua/ gets a copy of the project's Lua scripts).

Which Orthanc runs (the tests set these; `make run` needs neither):
  AUTHSVC_ORTHANC_COMMAND  the command that starts Orthanc, given the
                 configuration folder (default `Orthanc`, Debian's on PATH);
                 `make test-orthanc-1.12` names deploy/orthanc-trixie's wrapper;
  AUTHSVC_ORTHANC_ROOT     the root folder that Orthanc sees, when it runs in a
                 tree of its own (deploy/orthanc-trixie's): its plugins are
                 looked for there (default: none, this machine's).
"""

import argparse
import base64
import json
import os
import re
import secrets as pysecrets
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import requests

from .decision.routes import hot_reads_regex, lua_cache_grammar

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
            "CookieName": _cookie_name(site),
            # What the filter's cache may answer: the service's own route grammar.
            **lua_cache_grammar(),
        },
    }


def _cookie_name(site):
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


NGINX_CONF = """\
# Generated by authsvc.stack from site.json at every start: edit site.json.
{user}
worker_processes 1;
pid {run}/nginx.pid;
error_log {logs}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  include /etc/nginx/mime.types;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
{site}}}
"""

# The site itself: what `make run` wraps in NGINX_CONF above, and what
# `make install` puts in /etc/nginx/sites-available/ (authsvc/install.py),
# inside Debian's own nginx.conf. So every directive is at the http level
# of the site's own names (log_format, map, upstream) or in its servers,
# which override what Debian's http block sets for every site (its
# access_log logs query strings; gzip).
NGINX_SITE = """\
  # No query strings in the log: a token passed as ?token= must not be kept.
  log_format authsvc_noquery '$remote_addr [$time_local] "$request_method $uri" $status $body_bytes_sent';

  # The token of a request to Orthanc, one per request: the session cookie,
  # else the client's `token` header, else `Authorization: Bearer` (what
  # DICOMweb clients send), else `?token=`. The check below and Orthanc's
  # filter both decide with this one.
  map $http_authorization $authsvc_bearer {{
    "~*^bearer[ ]+(?<bearer>[A-Za-z0-9_.~+/=-]+)[ ]*$" $bearer;
    default "";
  }}
  map $cookie_{cookie} $authsvc_token_1 {{ "" $http_token; default $cookie_{cookie}; }}
  map $authsvc_token_1 $authsvc_token_2 {{ "" $authsvc_bearer; default $authsvc_token_1; }}
  map $authsvc_token_2 $orthanc_token {{ "" $arg_token; default $authsvc_token_2; }}

  # The check's connections to the service are kept open (gunicorn's gthread
  # workers keep them alive): a new connection per request to Orthanc would
  # cost more than the decision.
  upstream authsvc_gate {{
    server 127.0.0.1:{service_port};
    keepalive 8;
  }}

  server {{
{listen}
{server_common}
    # The Lua scripts' routes, the Authorization plugin's webhook and the
    # check below are for Orthanc and nginx only, never for the public port.
    location /internal {{ return 404; }}
    location /authz {{ return 404; }}
    location /api/gate {{ return 404; }}

    # The one check that sees the whole request (method, path and query),
    # before every request to Orthanc (authsvc/gate.py). A service that does
    # not answer within 1 s refuses the request (a decision takes about a
    # millisecond; under a full load, tens).
    location = /_authsvc_gate {{
      internal;
      proxy_pass http://authsvc_gate/api/gate;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header token $orthanc_token;
      proxy_set_header Cookie "";
      proxy_set_header Authorization "";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_connect_timeout 1s;
      proxy_send_timeout 1s;
      proxy_read_timeout 1s;
    }}
    location @authsvc_refused {{ return 403; }}
    location @authsvc_too_large {{
      default_type application/json;
      add_header Cache-Control no-store always;
      return 413 '{{"error": "too_large", "message": "The request is too large."}}';
    }}

    # Orthanc, behind the check and then the Lua request filter. nginx logs
    # in as its own Orthanc user (any Authorization header of the client is
    # replaced); the filter decides again with the same token, and reads the
    # query string, which Orthanc does not show it, from X-Authsvc-Query.
    location /orthanc/ {{
      auth_request /_authsvc_gate;
      error_page 500 = @authsvc_refused;
{to_orthanc}
    }}
    location @orthanc_checked {{
      auth_request /_authsvc_gate;
      error_page 500 = @authsvc_refused;
{to_orthanc}
    }}
    # The reads of one resource by Orthanc ID (a viewer's hundreds of
    # requests per study: the service's route grammar, routes.hot_reads_regex)
    # skip the check when they are GET or HEAD without a query string: the
    # Lua filter decides them exactly as the check would, from its cache
    # (a check per request doubled a slice's time: docs/architecture.md, "Speed").
    location ~ "{hot_reads}" {{
      error_page 418 = @orthanc_checked;
      # So that @orthanc_checked's own error_page (a check that failed: 403)
      # applies after this redirect too; without it, 500.
      recursive_error_pages on;
      if ($request_method !~ ^(GET|HEAD)$) {{ return 418; }}
      if ($args != "") {{ return 418; }}
{to_orthanc}
    }}

    location / {{
      proxy_pass http://127.0.0.1:{service_port};
      # The service's bodies are small JSON (MAX_BODY_BYTES); it reads each
      # to its end before answering, so that an early refusal is its 4xx.
      # Kept in memory, never in a temporary file (which nginx's workers
      # may be unable to open: a 500); longer ones refused here, in JSON.
      client_max_body_size 1m;
      client_body_buffer_size 1m;
      error_page 413 = @authsvc_too_large;
      proxy_set_header Host $http_host;
      # Proves to the service that this is nginx (authsvc/proxy.py): a local
      # process on the service's port has no say in X-Forwarded-For.
      proxy_set_header X-Authsvc-Proxy "{forwarded_secret}";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $http_host;
    }}
  }}
{http_redirect}"""

# What each server of the site sets for itself.
SERVER_COMMON = """\
    server_tokens off;
    gzip off;
    client_max_body_size 512m;
    access_log {access_log} authsvc_noquery;
{error_log}"""

# The entry's listen line(s): plain HTTP, or HTTPS with its certificate.
LISTEN_HTTP = "    listen {address}:{port};"
LISTEN_HTTPS = """    listen {address}:{https_port} ssl;
    ssl_certificate {certificate};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache shared:authsvc_tls:1m;
{hsts}"""
# With HTTPS, the HTTP port only sends browsers there (and says nothing else).
HTTP_REDIRECT = """  server {{
    listen {address}:{port};
{server_common}    location / {{ return 301 {https_base}$request_uri; }}
  }}
"""
# Browsers that saw HTTPS once refuse plain HTTP to this host for a year. A
# location with its own add_header (TO_ORTHANC's) inherits none: it says it too.
HSTS = '    add_header Strict-Transport-Security "max-age=31536000" always;'


# How every location of Orthanc's passes a request on.
TO_ORTHANC = """\
      rewrite ^/orthanc/(.*)$ /$1 break;
      proxy_pass http://127.0.0.1:{orthanc_port};
      proxy_set_header Authorization "Basic {proxy_basic}";
      proxy_set_header token $orthanc_token;
      proxy_set_header X-Authsvc-Query $args;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_read_timeout 300s;
      # Images and ZIPs of patients: never kept by a browser or a cache.
      add_header Cache-Control "private, no-store" always;{hsts}"""


def nginx_config(site, secrets, data_dir):
    """The whole nginx.conf of `make run`: its own nginx, files in the data folder."""
    user = "user www-data;" if os.geteuid() == 0 else ""
    logs = data_dir / "logs"
    return NGINX_CONF.format(
        user=user,
        run=data_dir / "nginx",
        logs=logs,
        tmp=data_dir / "nginx" / "tmp",
        site=nginx_site(site, secrets, data_dir, access_log=logs / "nginx-access.log"),
    )


def nginx_site(site, secrets, data_dir, access_log, error_log=None):
    """The site's maps, upstream and servers (relative TLS paths: to data_dir)."""
    basic = base64.b64encode(f"{PROXY_USER}:{secrets['proxy_password']}".encode()).decode()
    tls = tls_enabled(site)
    hsts = HSTS if tls else ""
    common = SERVER_COMMON.format(
        access_log=access_log, error_log=f"    error_log {error_log} warn;\n" if error_log else ""
    )
    to_orthanc = TO_ORTHANC.format(
        orthanc_port=site["orthanc_http_port"], proxy_basic=basic, hsts="\n  " + hsts if tls else ""
    )
    if tls:
        listen = LISTEN_HTTPS.format(
            address=site["http_address"],
            https_port=site["https_port"],
            hsts=hsts,
            certificate=_nginx_path(site["tls_certificate"], data_dir),
            key=_nginx_path(site["tls_key"], data_dir),
        )
        http_redirect = HTTP_REDIRECT.format(
            address=site["http_address"],
            port=site["http_port"],
            https_base=_https_base(site),
            server_common=common,
        )
    else:
        listen = LISTEN_HTTP.format(address=site["http_address"], port=site["http_port"])
        http_redirect = ""
    return NGINX_SITE.format(
        to_orthanc=to_orthanc,
        hot_reads=hot_reads_regex(),
        listen=listen,
        server_common=common,
        http_redirect=http_redirect,
        service_port=site["service_port"],
        cookie=_cookie_name(site),
        forwarded_secret=secrets["forwarded_secret"],
    )


def _https_base(site):
    """Where the HTTP port sends browsers: public_url's scheme and host when
    it is HTTPS (never the request's own Host header), else this host's
    name as asked, on https_port."""
    from urllib.parse import urlsplit

    url = urlsplit(site["public_url"])
    if url.scheme == "https":
        if not re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", url.netloc):
            raise SystemExit(f"public_url {site['public_url']!r}: not a plain host[:port]")
        return f"https://{url.netloc}"
    suffix = "" if int(site["https_port"]) == 443 else f":{site['https_port']}"
    return f"https://$host{suffix}"


def _nginx_path(path, data_dir):
    """A PEM path of site.json (relative: to the data folder), checked now:
    nginx would otherwise fail at start with a less clear message."""
    full = (data_dir / path).resolve()
    if not full.is_file():
        raise SystemExit(f"site.json: {path} is not a file")
    if re.search(r"[\s;{}'\"$]", str(full)):
        raise SystemExit(f"site.json: {path}: no spaces, quotes, ; {{ }} or $ in TLS paths")
    return str(full)


class Stack:
    """Orthanc + gunicorn + nginx, configured from one data folder."""

    def __init__(self, data_dir, site_overrides=None, env=None):
        self.data_dir = Path(data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o711)  # nginx's workers (www-data) need to pass through
        self.site = load_site(self.data_dir, site_overrides)
        self.secrets = load_secrets(self.data_dir)
        ensure_display_key(display_key_file(self.site, self.data_dir), self.data_dir)
        self.env = dict(os.environ, **(env or {}))
        self.env["TCP_NODELAY"] = "1"
        self.env["AUTHSVC_CONFIG"] = str(self.data_dir / "authsvc.json")
        self.procs = {}
        self.logs = self.data_dir / "logs"

    # -- configuration ---------------------------------------------------

    def configure(self):
        d = self.data_dir
        self.logs.mkdir(exist_ok=True)
        for sub in ("orthanc/storage", "orthanc/config", "orthanc/lua", "nginx/tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(d / "orthanc" / "storage", 0o700)
        if os.geteuid() == 0:
            shutil.chown(d / "nginx" / "tmp", "www-data", "www-data")
        shutil.copyfile(REPO / "orthanc-config" / "orthanc.json", d / "orthanc/config/orthanc.json")
        # Orthanc reads its Lua scripts from the data folder: an Orthanc in a
        # tree of its own (AUTHSVC_ORTHANC_ROOT) sees that, not the repository.
        for name in LUA_SCRIPTS:
            shutil.copyfile(REPO / "lua" / name, d / "orthanc" / "lua" / name)
        if not (d / "rules.json").exists():
            # The examples, all commented out: no rule login until IT writes one.
            shutil.copyfile(REPO / "deploy" / "rules.example.json", d / "rules.json")
        write_file(
            d / "orthanc/config/local.json",
            json.dumps(orthanc_local_config(self.site, self.secrets, d), indent=2),
            mode=0o600,
        )
        write_file(
            d / "authsvc.json", json.dumps(authsvc_config(self.site, d), indent=2), mode=0o600
        )
        write_file(d / "nginx/nginx.conf", nginx_config(self.site, self.secrets, d), mode=0o600)
        tighten(d)

    def prepare_database(self):
        """Migrations and the first admin, before the server starts. Returns
        the admin password when one was generated now (to print once)."""
        out = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "authsvc", "migrate"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            umask=UMASK,
        )
        out = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "authsvc", "ensure-admin"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
            umask=UMASK,
        )
        return out.stdout.strip()

    # -- processes -------------------------------------------------------

    @property
    def orthanc_url(self):
        return f"http://127.0.0.1:{self.site['orthanc_http_port']}"

    @property
    def service_url(self):
        return f"http://127.0.0.1:{self.site['service_port']}"

    @property
    def public_url(self):
        return f"http://{self.site['http_address']}:{self.site['http_port']}"

    @property
    def https_url(self):
        return f"https://{self.site['http_address']}:{self.site['https_port']}"

    def _spawn(self, name, argv):
        path = self.logs / f"{name}.log"
        log = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")
        os.chmod(path, 0o600)
        with log:
            self.procs[name] = subprocess.Popen(
                argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                umask=UMASK,
            )

    def start_orthanc(self):
        command = self.env.get("AUTHSVC_ORTHANC_COMMAND") or "Orthanc"
        self._spawn("orthanc", [command, str(self.data_dir / "orthanc" / "config")])
        self._wait_http(
            self.orthanc_url + "/system",
            "orthanc",
            auth=("authsvc", self.secrets["orthanc_password"]),
        )

    def start_service(self):
        self._spawn(
            "authsvc",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(REPO / "authsvc" / "gunicorn_conf.py"),
                "--bind",
                f"127.0.0.1:{self.site['service_port']}",
                "--workers",
                str(self.site["service_workers"]),
                "authsvc:create_app()",
            ],
        )
        self._wait_http(self.service_url + "/api/health", "authsvc")

    def spawn_nginx(self):
        """nginx on the configuration `configure` wrote, in the foreground."""
        conf = self.data_dir / "nginx" / "nginx.conf"
        self._spawn(
            "nginx",
            [
                "nginx",
                "-e",
                str(self.logs / "nginx-error.log"),
                "-c",
                str(conf),
                "-g",
                "daemon off;",
            ],
        )

    def start_nginx(self):
        self.spawn_nginx()
        if tls_enabled(self.site):
            # Its own certificate, maybe self-signed: that it answers is the question.
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            self._wait_http(self.https_url + "/api/health", "nginx", verify=False)
        else:
            self._wait_http(self.public_url + "/api/health", "nginx")

    def _wait_http(self, url, name, auth=None, timeout=60, verify=True):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {proc.returncode}; see {self.logs}/{name}.log"
                )
            try:
                if (
                    requests.get(
                        url, auth=auth, timeout=2, verify=verify, allow_redirects=False
                    ).status_code
                    < 500
                ):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer within {timeout} s; see {self.logs}")

    def stop(self, name, sig=signal.SIGTERM):
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def reap(self, name):
        """Forget a child that died, and end what is left of its process group
        (gunicorn's workers, nginx's: they would keep its port)."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        return proc.returncode

    def starter(self, name):
        return {
            "orthanc": self.start_orthanc,
            "authsvc": self.start_service,
            "nginx": self.start_nginx,
        }[name]

    def start(self):
        self.configure()
        admin = self.prepare_database()
        self.start_orthanc()
        self.start_service()
        self.start_nginx()
        return admin

    def stop_all(self):
        for name in ("nginx", "authsvc", "orthanc"):
            self.stop(name)


def self_signed(data_dir, host, days=825):
    """A self-signed certificate for `host` (an IP address or a name of the
    hospital's network), with Debian's openssl, in the data folder's tls/;
    site.json is pointed at it unless it names another one. Each phone asks
    once whether to trust it (docs/install.md, HTTPS)."""
    import ipaddress

    data_dir = Path(data_dir).resolve()
    try:
        ipaddress.ip_address(host)
        san = f"IP:{host}"
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?", host):
            raise SystemExit(f"not an IP address or a host name: {host!r}") from None
        san = f"DNS:{host}"
    tls = data_dir / "tls"
    tls.mkdir(parents=True, exist_ok=True)
    os.chmod(tls, 0o700)
    cert, key = tls / "certificate.pem", tls / "key.pem"
    old_umask = os.umask(0o077)  # the key is never readable by others, not even a moment
    try:
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-sha256",
                "-nodes",
                "-days",
                str(days),
                "-subj",
                f"/CN={host}",
                "-addext",
                f"subjectAltName={san}",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-addext",
                "extendedKeyUsage=serverAuth",
                "-keyout",
                str(key),
                "-out",
                str(cert),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
    finally:
        os.umask(old_umask)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o600)
    path = data_dir / "site.json"
    site = json.loads(path.read_text(encoding="utf-8")) if path.exists() else dict(SITE_DEFAULTS)
    if not site.get("tls_certificate") and not site.get("tls_key"):
        site["tls_certificate"], site["tls_key"] = "tls/certificate.pem", "tls/key.pem"
        write_file(path, json.dumps(site, indent=2) + "\n", mode=0o600)
    return cert, key


def startup_warnings(site, data_dir):
    """What `make run` says after starting, before anyone prints a slip."""
    from . import publicurl

    if publicurl.unusable(site["public_url"]):
        return [
            f"""
WARNING: public_url is {site["public_url"]}: it works on this server only, so
  every slip and QR code leads nowhere on a patient's phone (and staff pages and
  slips say so). Set "public_url" in {data_dir}/site.json to the address people
  use on the hospital's network, then restart. `make doctor` checks the rest."""
        ]
    return []


def main(argv=None):
    parser = argparse.ArgumentParser(prog="authsvc.stack", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["run", "configure", "doctor", "self-signed"])
    parser.add_argument("--data-dir", default=str(REPO / "data"))
    parser.add_argument("--host", help="self-signed: the server's address or name on the LAN")
    args = parser.parse_args(argv)
    if args.command == "self-signed":
        if not args.host:
            parser.error("self-signed needs --host (the address phones will open)")
        cert, key = self_signed(args.data_dir, args.host)
        print(
            f"certificate {cert} and key {key} for {args.host}, valid 825 days;\n"
            f"site.json names them (tls_certificate, tls_key). Set public_url to "
            f"https://{args.host}:<https_port>/ and restart make run."
        )
        return 0
    if args.command == "doctor":
        from . import doctor

        return doctor.run(args.data_dir, sys.stdout)
    stack = Stack(args.data_dir)
    if args.command == "configure":
        stack.configure()
        print(f"configuration written under {stack.data_dir}")
        return 0

    stopping = []

    def _stop(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        admin = stack.start()
    except Exception as exc:
        stack.stop_all()
        print(f"could not start: {exc}", file=sys.stderr)
        return 1
    print(
        f"""
Orthanc patient access is running.
  Open:            {stack.site["public_url"]}/
  Orthanc (REST):  {stack.site["public_url"]}/orthanc/   (a session is needed)
  DICOM:           AE title {stack.site["dicom_aet"]}, port {stack.site["dicom_port"]}
  {admin}
  Settings:        {stack.data_dir}/site.json      Logs: {stack.logs}/
Press Ctrl-C to stop.""",
        flush=True,
    )
    for warning in startup_warnings(stack.site, stack.data_dir):
        print(warning, flush=True)
    Supervisor(stack).run(stopping)
    print("stopping nginx, the service and Orthanc ...", flush=True)
    stack.stop_all()
    return 0


class Supervisor:
    """Keeps the three children of `make run` running: one that dies is
    started again, alone, after a delay that doubles at each death in a row
    (RESTART_FIRST_DELAY up to RESTART_MAX_DELAY) and starts over once it
    has run RESTART_RESET_SECONDS. The others keep running meanwhile: nginx
    refuses what needs the service (403), Orthanc keeps storing DICOM."""

    RESTART_FIRST_DELAY = 1.0
    RESTART_MAX_DELAY = 60.0
    RESTART_RESET_SECONDS = 120.0
    ORDER = ("orthanc", "authsvc", "nginx")

    def __init__(self, stack, clock=time.monotonic, out=sys.stderr):
        self.stack = stack
        self.clock = clock
        self.out = out
        self.delay = {name: self.RESTART_FIRST_DELAY for name in self.ORDER}
        self.started_at = {name: clock() for name in self.ORDER}
        self.due = {}  # name -> when to start it again

    def say(self, text):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        print(f"{stamp} {text}", file=self.out, flush=True)

    def tick(self):
        now = self.clock()
        for name in self.ORDER:
            proc = self.stack.procs.get(name)
            if proc is not None and proc.poll() is None:
                if now - self.started_at[name] > self.RESTART_RESET_SECONDS:
                    self.delay[name] = self.RESTART_FIRST_DELAY
                continue
            if name not in self.due:
                code = self.stack.reap(name)
                self.due[name] = now + self.delay[name]
                self.say(
                    f"{name} stopped (exit status {code}); starting it again in "
                    f"{self.delay[name]:g} s; see {self.stack.logs}/{name}.log"
                )
                continue
            if now < self.due[name]:
                continue
            del self.due[name]
            try:
                self.stack.starter(name)()
            except Exception as exc:  # noqa: BLE001 - said, then tried again later
                self.say(f"{name} did not start again: {exc}")
                self.stack.reap(name)
            else:
                self.say(f"{name} is running again (pid {self.stack.procs[name].pid})")
            self.started_at[name] = self.clock()
            self.delay[name] = min(self.delay[name] * 2, self.RESTART_MAX_DELAY)

    def run(self, stopping, interval=0.25):
        while not stopping:
            self.tick()
            time.sleep(interval)


if __name__ == "__main__":
    sys.exit(main())
