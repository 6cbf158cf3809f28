"""The two systems compared side by side, each in its own temporary folder
with free ports:

- the project's stack (`deploy.trial.Stack`): Debian's Orthanc with the
  project's Lua scripts, the service under gunicorn, nginx in front;
- a plain stack: the same Orthanc binary, the same orthanc.json, plugins,
  Orthanc users and nginx template, but no Lua at all, no service, and no
  `auth_request` check in nginx. nginx logs in to Orthanc as its own user,
  exactly as on the project's stack, so the two differ only by the
  authorization (nginx's check, the Lua filter, and the service both ask).
"""

import json

from deploy.site import write_file
from deploy.trial import Stack
from tests.helpers import free_port


def site_overrides(stable_age):
    ports = {
        k: free_port() for k in ("http_port", "orthanc_http_port", "dicom_port", "service_port")
    }
    # The service keeps its production defaults (DECISION_CACHE_SECONDS 5,
    # four gunicorn workers of one thread); only StableAge is shortened,
    # since B4 measures what comes after it.
    return dict(ports, stable_age_seconds=stable_age)


class ProjectStack(Stack):
    """The project's own launcher, unchanged."""

    label = "project (nginx check, Lua filter, service)"


class PlainStack(Stack):
    """Orthanc without the project's Lua, behind the same nginx; no service."""

    label = "plain Orthanc (no authorization)"

    def configure(self):
        super().configure()
        path = self.data_dir / "orthanc" / "config" / "local.json"
        config = json.loads(path.read_text())
        config.pop("LuaScripts", None)
        config.pop("PatientAccess", None)
        write_file(path, json.dumps(config, indent=2), mode=0o600)
        conf = self.data_dir / "nginx" / "nginx.conf"
        text = conf.read_text()
        for line in ("auth_request /_authsvc_gate;", "error_page 500 = @authsvc_refused;"):
            if line not in text:
                raise RuntimeError(f"the nginx template changed: no {line!r} to remove")
            text = text.replace(line, "")
        write_file(conf, text, mode=0o600)

    def start(self):
        self.configure()
        self.start_orthanc()
        self.spawn_nginx()
        # No service behind "/" here: wait on Orthanc through nginx instead.
        self._wait_http(self.public_url + "/orthanc/system", "nginx")
        return ""


def log_tails(stack, lines=30):
    out = []
    for log in sorted(stack.logs.glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"===== {log.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(out)


PYTHON_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPython.so"

# The least an HTTP filter of the orthanc-python plugin can do: look at one
# header and allow. Compared with the Lua filter's fast path (a trusted user:
# one table lookup, then true), it prices the mechanism itself.
PYTHON_FILTER = """\
import orthanc


def _filter(uri, **request):
    return request["headers"].get("authorization") is not None or True


orthanc.RegisterIncomingHttpRequestFilter(_filter)
"""


class PythonFilterStack(PlainStack):
    """The plain stack plus the orthanc-python plugin with a trivial HTTP filter."""

    label = "plain Orthanc + orthanc-python filter (returns True)"

    def configure(self):
        super().configure()
        script = self.data_dir / "orthanc" / "config-filter.py"
        write_file(script, PYTHON_FILTER)
        path = self.data_dir / "orthanc" / "config" / "local.json"
        config = json.loads(path.read_text())
        config["Plugins"] = config.get("Plugins", []) + [PYTHON_PLUGIN]
        config["PythonScript"] = str(script)
        write_file(path, json.dumps(config, indent=2), mode=0o600)
