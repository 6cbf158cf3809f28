"""`make doctor`: the first-day checks of a site, in plain lines that read the
same to a Spanish or an English speaker (a key name, then what is wrong).

    python -m deploy.trial doctor [--data-dir DIR]

Each line is `ok`, `WARN` or `info`, the setting or thing checked, and a
sentence. Exits 1 when there is any WARN, 0 otherwise. It reads the data
folder and asks the running system (nginx through public_url, Orthanc on
loopback); it changes nothing.
"""

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import requests

from authsvc import publicurl

LOW_DISK_BYTES = 5 * 1024**3  # below this free, or below LOW_DISK_SHARE, warn
LOW_DISK_SHARE = 0.10
OLDEST_ORTHANC = (1, 10)  # Debian 12's is 1.10.1
SHOWN_FILES = 5
CERT_WARN_DAYS = 30


def _site(data_dir):
    from .site import SITE_DEFAULTS

    site = dict(SITE_DEFAULTS)
    path = data_dir / "site.json"
    if path.exists():
        site.update(json.loads(path.read_text(encoding="utf-8")))
    if not site["public_url"]:
        if site.get("tls_certificate") and site.get("tls_key"):
            site["public_url"] = f"https://{site['http_address']}:{site['https_port']}"
        else:
            site["public_url"] = f"http://{site['http_address']}:{site['http_port']}"
    return site, path.exists()


def world_readable(data_dir):
    """Files (and folders) under `data_dir` that any local user may read."""
    found = []
    for root, dirs, files in os.walk(data_dir):
        for name in dirs + files:
            path = Path(root) / name
            try:
                st = path.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & stat.S_IROTH and not stat.S_ISDIR(st.st_mode):
                found.append(path)
    return sorted(found)


def orthanc_version(site, secrets, env=None):
    """The running Orthanc's version from /system, else `Orthanc --version`'s."""
    try:
        r = requests.get(
            f"http://127.0.0.1:{site['orthanc_http_port']}/system",
            timeout=3,
            auth=("authsvc", secrets.get("orthanc_password", "")),
        )
        if r.status_code == 200:
            return r.json()["Version"], "running"
    except (requests.RequestException, ValueError, KeyError):
        pass
    command = (env or os.environ).get("AUTHSVC_ORTHANC_COMMAND") or "Orthanc"
    try:
        out = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None, "not installed"
    for word in out.stdout.split():
        if word[:1].isdigit() and "." in word:
            return word, "installed, not running"
    return None, "installed, version unknown"


def _version_tuple(text):
    parts = []
    for part in text.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def checks(data_dir, settings_dir=None):
    """[(level, what, sentence)], level being "ok", "WARN" or "info".
    site.json and secrets.json are read from settings_dir (an installed
    server's /etc/orthanc-patient-access), by default from data_dir."""
    from .site import SITE_DEFAULTS

    data_dir = Path(data_dir).resolve()
    settings_dir = Path(settings_dir).resolve() if settings_dir else data_dir
    results = []

    def add(level, what, text):
        results.append((level, what, text))

    site, exists = _site(settings_dir)
    if not exists:
        add("WARN", "site.json", f"{settings_dir}/site.json does not exist: run `make run` once")
    secrets_path = settings_dir / "secrets.json"
    secrets = json.loads(secrets_path.read_text()) if secrets_path.exists() else {}

    url = site["public_url"]
    if publicurl.unusable(url):
        add(
            "WARN",
            "public_url",
            f"{url} works on this server only: slips and QR codes "
            "are useless on a patient's phone; set public_url in site.json to the "
            "address people use (e.g. https://10.0.0.5 or https://pacs.hospital.ve)",
        )
    else:
        try:
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            # A self-signed certificate is checked by its owner, not here.
            r = requests.get(url.rstrip("/") + "/api/health", timeout=5, verify=False)
            if r.status_code == 200:
                add("ok", "public_url", f"{url} answers")
            else:
                add("WARN", "public_url", f"{url} answers {r.status_code}, not the service")
        except requests.RequestException as exc:
            add(
                "WARN",
                "public_url",
                f"{url} is unreachable from this server "
                f"({type(exc).__name__}): is `make run` running, does the name resolve?",
            )
    if urlsplit(url).scheme == "https" and not (
        site.get("tls_certificate") and site.get("tls_key")
    ):
        add(
            "WARN",
            "https",
            f"{url} is HTTPS but tls_certificate and tls_key are not set: nginx serves HTTP only",
        )
    elif urlsplit(url).scheme != "https":
        add(
            "WARN",
            "https",
            f"{url} is HTTP only: passwords and images cross the "
            "network in clear text (see docs/install.md, HTTPS)",
        )
    else:
        add("ok", "https", url)
    if site.get("tls_certificate"):
        cert = (settings_dir / site["tls_certificate"]).resolve()
        expiring = subprocess.run(
            [
                "openssl",
                "x509",
                "-in",
                str(cert),
                "-noout",
                "-checkend",
                str(CERT_WARN_DAYS * 86400),
            ],
            capture_output=True,
            text=True,
        )
        if expiring.returncode != 0:
            add(
                "WARN",
                "tls_certificate",
                f"{cert} is unreadable, or expires within "
                f"{CERT_WARN_DAYS} days: renew it (make tls-self-signed, or certbot)",
            )
        else:
            add("ok", "tls_certificate", f"{cert} valid {CERT_WARN_DAYS}+ more days")

    address = site["http_address"]
    if publicurl.unusable(f"http://{address}/") and address not in ("0.0.0.0", "::"):
        add(
            "WARN",
            "http_address",
            f"nginx listens on {address} only: no other "
            "machine can reach it (0.0.0.0 for the hospital's network)",
        )
    else:
        add("ok", "http_address", f"nginx listens on {address}")

    modalities = site["modalities"]
    if not modalities or modalities == SITE_DEFAULTS["modalities"]:
        add(
            "WARN",
            "modalities",
            "only the default STORESCU at 127.0.0.1 may send: add "
            "the AE title, host and port of each CT and CR",
        )
    else:
        add("ok", "modalities", ", ".join(sorted(modalities)))

    hospital = site.get("authsvc", {}).get("HOSPITAL_NAME")
    if not hospital or hospital == "Hospital":
        add(
            "WARN",
            "HOSPITAL_NAME",
            'not set: pages and slips say "Hospital" '
            '(site.json, "authsvc": {"HOSPITAL_NAME": "..."})',
        )
    else:
        add("ok", "HOSPITAL_NAME", hospital)

    if data_dir.exists():
        readable = world_readable(data_dir)
        if readable:
            shown = ", ".join(str(p.relative_to(data_dir)) for p in readable[:SHOWN_FILES])
            more = f" and {len(readable) - SHOWN_FILES} more" if len(readable) > SHOWN_FILES else ""
            add(
                "WARN",
                "permissions",
                f"{len(readable)} file(s) under {data_dir} readable "
                f"by every local user: {shown}{more}",
            )
        else:
            add("ok", "permissions", f"no file under {data_dir} is readable by other users")
        usage = shutil.disk_usage(data_dir)
        free_gib = usage.free / 1024**3
        if usage.free < LOW_DISK_BYTES or usage.free < LOW_DISK_SHARE * usage.total:
            add(
                "WARN",
                "disk",
                f"{free_gib:.1f} GiB free of {usage.total / 1024**3:.1f} "
                f"under {data_dir}: studies will soon stop being stored",
            )
        else:
            add("ok", "disk", f"{free_gib:.1f} GiB free under {data_dir}")

    version, how = orthanc_version(site, secrets)
    if version is None:
        add("WARN", "orthanc", how)
    elif _version_tuple(version) < OLDEST_ORTHANC:
        add(
            "WARN",
            "orthanc",
            f"{version} ({how}): older than {'.'.join(map(str, OLDEST_ORTHANC))}, not tested",
        )
    else:
        add("info", "orthanc", f"{version} ({how})")
    return results


def run(data_dir, out, settings_dir=None):
    results = checks(data_dir, settings_dir)
    for level, what, text in results:
        print(f"{level:<5} {what}: {text}", file=out)
    warnings = sum(1 for level, _, _ in results if level == "WARN")
    print(f"{warnings} warning(s)", file=out)
    return 1 if warnings else 0
