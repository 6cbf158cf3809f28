"""No secret in any log: passwords, session tokens and the stack's own secrets
never appear in what Orthanc, the service or nginx write, after logins (good
and bad), password issuing, Orthanc requests with tokens, and a study ingest."""

import uuid

import pytest

from tests.dicom_samples import recorded, send_patient
from tests.helpers import ADMIN_PASSWORD, Browser, wait_for

pytestmark = pytest.mark.stack


def test_logs_hold_no_secrets(stack, orthanc, admin, tmp_path):
    p = send_patient(
        stack, orthanc, tmp_path, f"PL-{uuid.uuid4().hex[:6]}", "LOG^TEST", "ISO_IR 192"
    )
    wait_for(lambda: recorded(admin, p["study"]), 30, what="study recorded")
    password = admin.post(f"/api/patients/{p['pid']}/credentials", json={}).json()["password"]
    b = Browser(stack.public_url)
    b.login(patient_id=p["pid"], password="zzzz-zzzz-zzzz")
    assert b.login(patient_id=p["pid"], password=password).status_code == 200
    token = b.http.cookies.get("authsvc_session")
    b.get("/orthanc/studies/" + p["study"])
    b.get("/orthanc/system")
    Browser(stack.public_url).get("/orthanc/studies/" + p["study"] + "?token=" + token)
    b.logout()

    secrets = [v for v in stack.secrets.values()] + [
        password,
        password.replace("-", ""),
        token,
        ADMIN_PASSWORD,
    ]
    logs = {log.name: log.read_text(errors="replace") for log in stack.logs.glob("*.log")}
    assert {"orthanc.log", "authsvc.log", "nginx-access.log"} <= set(logs)
    assert p["study"] in logs["nginx-access.log"]  # the logs were really written
    for name, text in logs.items():
        for secret in secrets:
            assert secret not in text, f"a secret appears in {name}"
