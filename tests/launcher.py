"""`make run` (python -m deploy.trial run) as a subprocess on its own
temporary data folder and free ports, for the tests of the launcher itself."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import requests

from tests.helpers import ADMIN_PASSWORD, free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def children(pid):
    """{name: pid} of the launcher's children, named by their command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
            continue
        words = b" ".join(cmdline)
        if b"gunicorn" in words:
            found["authsvc"] = int(entry.name)
        elif words.startswith(b"nginx"):  # "nginx: master process nginx -e ..."
            found["nginx"] = int(entry.name)
        elif b"/orthanc/config" in words:
            found["orthanc"] = int(entry.name)
    return found


class Launcher:
    def __init__(self, data, **site):
        self.data = data
        self.site = {
            "http_port": free_port(),
            "orthanc_http_port": free_port(),
            "dicom_port": free_port(),
            "service_port": free_port(),
            "service_workers": 2,
            "stable_age_seconds": 1,
            "authsvc": {"CHANGES_POLL_SECONDS": 2},
            **site,
        }
        data.mkdir(parents=True, exist_ok=True)
        (data / "site.json").write_text(json.dumps(self.site))
        self.output = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.trial", "run", "--data-dir", str(data)],
            cwd=ROOT,
            env=dict(os.environ, AUTHSVC_ADMIN_PASSWORD=ADMIN_PASSWORD),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        wait_for(
            lambda: "Press Ctrl-C to stop." in self.text or self.proc.poll() is not None,
            120,
            what="make run started",
        )
        assert self.proc.poll() is None, self.text
        self.secrets = json.loads((data / "secrets.json").read_text())

    def _read(self):
        for line in self.proc.stdout:
            self.output.append(line)

    @property
    def text(self):
        return "".join(self.output)

    def answers(self, name):
        urls = {
            "orthanc": f"http://127.0.0.1:{self.site['orthanc_http_port']}/system",
            "authsvc": f"http://127.0.0.1:{self.site['service_port']}/api/health",
            "nginx": f"http://127.0.0.1:{self.site['http_port']}/api/health",
        }
        try:
            return (
                requests.get(
                    urls[name], timeout=2, auth=("authsvc", self.secrets["orthanc_password"])
                ).status_code
                == 200
            )
        except requests.RequestException:
            return False

    def echo(self):
        return (
            subprocess.run(
                [
                    "echoscu",
                    "-aet",
                    "STORESCU",
                    "-aec",
                    "ORTHANC",
                    "127.0.0.1",
                    str(self.site["dicom_port"]),
                ],
                capture_output=True,
                timeout=30,
            ).returncode
            == 0
        )

    def stop(self):
        left = children(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        for pid in left.values():  # never leave a child behind a failed test
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
