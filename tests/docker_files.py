"""The docker deployment's files as the tests read them: JSON with `//`
comment lines (deploy/docker/*.json), and the Authorization plugin's section
of deploy/docker/orthanc.json. Shared by tests/test_docker.py and
tests/test_docker_permissions.py."""

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_commented_json(path):
    text = re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M)
    return json.loads(text)


def plugin_config():
    return load_commented_json(ROOT / "deploy" / "docker" / "orthanc.json")["Authorization"]
