"""Runs the whole system on one machine: Orthanc (Debian's package), the
service under gunicorn, and nginx as the single HTTP entry.

`python -m deploy.trial run [--data-dir DIR]` is what `make run` calls; the
integration tests drive the same `Stack` class with their own folder and ports.
Under `run`, a Supervisor starts a child that died again (with a backoff),
leaving the others running. `doctor` is `make doctor` (deploy/doctor.py).

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
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from .nginx import nginx_config
from .site import (
    LUA_SCRIPTS,
    REPO,
    SITE_DEFAULTS,
    UMASK,
    authsvc_config,
    display_key_file,
    ensure_display_key,
    load_secrets,
    load_site,
    orthanc_local_config,
    tighten,
    tls_enabled,
    write_file,
)


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
        for command in ("migrate", "ensure-admin"):  # ensure-admin's output is kept
            out = subprocess.run(
                [sys.executable, "-m", "flask", "--app", "authsvc", command],
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
    from authsvc import publicurl

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
    parser = argparse.ArgumentParser(prog="deploy.trial", description=__doc__.split("\n")[0])
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
