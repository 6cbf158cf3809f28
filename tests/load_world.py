"""A stack with patients and a study to view, for the load test and its
longer run in bench/viewers.py."""

import time
import uuid
from contextlib import contextmanager

import requests

from deploy.trial import Stack
from tests.dicom_samples import SeriesSpec, StudySpec, lookup, storescu, write_study
from tests.helpers import ADMIN_PASSWORD, free_port


def make_world(stack, orthanc_auth, tmp, patients=5, slices=10):
    """Patients with one CT series each, logged in: [(cookie, viewer URLs of
    their own study)]."""
    from bench.viewers import viewer_urls

    base = stack.public_url
    admin = requests.Session()
    assert (
        admin.post(
            base + "/api/login", json={"username": "admin", "password": ADMIN_PASSWORD}
        ).status_code
        == 200
    )
    sessions = []
    for n in range(patients):
        pid = f"LOAD-{uuid.uuid4().hex[:6]}"
        written = write_study(
            StudySpec(pid, f"LOAD^P{n}", series=[SeriesSpec("CT", slices, {})]), tmp / pid
        )
        assert storescu(written.files, stack.site["dicom_port"]).returncode == 0
        ortho = requests.Session()
        ortho.auth = orthanc_auth
        ortho.base = stack.orthanc_url
        study = lookup(ortho, written.study_uid)
        series = lookup(ortho, written.series_uids[0])
        instances = [lookup(ortho, uid) for uid in written.sop_uids]
        for _ in range(300):  # until recorded (StableAge 1 s)
            r = admin.post(f"{base}/api/patients/{pid}/credentials", json={})
            if r.status_code == 200:
                break
            time.sleep(0.2)
        password = r.json()["password"]
        login = requests.post(base + "/api/login", json={"patient_id": pid, "password": password})
        assert login.status_code == 200
        sessions.append((login.cookies["authsvc_session"], viewer_urls(study, series, instances)))
    return {"base": base, "sessions": sessions}


@contextmanager
def prepared_world(tmp):
    ports = {
        k: free_port() for k in ("http_port", "orthanc_http_port", "dicom_port", "service_port")
    }
    stack = Stack(
        tmp / "stack",
        dict(ports, stable_age_seconds=1),
        env={"AUTHSVC_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    try:
        stack.start()
        yield make_world(stack, ("authsvc", stack.secrets["orthanc_password"]), tmp)
    finally:
        stack.stop_all()
