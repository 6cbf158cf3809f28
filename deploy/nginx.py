"""nginx's configuration of the site, from the templates in deploy/templates/
(str.format: a literal brace is doubled). nginx.conf is `make run`'s whole
file; nginx-site.conf is the site itself, which `make run` wraps in it and
`make install` puts in /etc/nginx/sites-available/ inside Debian's own
nginx.conf. So every directive of the site is at the http level of the
site's own names (log_format, map, upstream) or in its servers, which
override what Debian's http block sets for every site (its access_log logs
query strings; gzip)."""

import base64
import os
import re
from functools import cache
from pathlib import Path

from authsvc.decision.routes import hot_reads_regex

from .site import PROXY_USER, cookie_name, tls_enabled

TEMPLATES = Path(__file__).resolve().parent / "templates"

# The entry's listen line for plain HTTP (listen-https.conf: with TLS).
LISTEN_HTTP = "    listen {address}:{port};"
# Browsers that saw HTTPS once refuse plain HTTP to this host for a year. A
# location with its own add_header (to-orthanc.conf's) inherits none: it says it too.
HSTS = '    add_header Strict-Transport-Security "max-age=31536000" always;'


@cache
def template(name):
    return (TEMPLATES / name).read_text(encoding="utf-8")


def nginx_config(site, secrets, data_dir):
    """The whole nginx.conf of `make run`: its own nginx, files in the data folder."""
    user = "user www-data;" if os.geteuid() == 0 else ""
    logs = data_dir / "logs"
    return template("nginx.conf").format(
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
    common = template("server-common.conf").format(
        access_log=access_log, error_log=f"    error_log {error_log} warn;\n" if error_log else ""
    )
    to_orthanc = template("to-orthanc.conf").format(
        orthanc_port=site["orthanc_http_port"], proxy_basic=basic, hsts="\n  " + hsts if tls else ""
    )
    if tls:
        listen = template("listen-https.conf").format(
            address=site["http_address"],
            https_port=site["https_port"],
            hsts=hsts,
            certificate=_nginx_path(site["tls_certificate"], data_dir),
            key=_nginx_path(site["tls_key"], data_dir),
        )
        http_redirect = template("http-redirect.conf").format(
            address=site["http_address"],
            port=site["http_port"],
            https_base=_https_base(site),
            server_common=common,
        )
    else:
        listen = LISTEN_HTTP.format(address=site["http_address"], port=site["http_port"])
        http_redirect = ""
    return template("nginx-site.conf").format(
        to_orthanc=to_orthanc,
        hot_reads=hot_reads_regex(),
        listen=listen,
        server_common=common,
        http_redirect=http_redirect,
        service_port=site["service_port"],
        cookie=cookie_name(site),
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
