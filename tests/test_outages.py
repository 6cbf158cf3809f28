"""Fail closed, and lose nothing: the service stopped or hung behind a real
Orthanc, and a study that becomes stable while the service is down."""

import os
import signal
import time
import uuid

import pytest
import requests

from deploy.site import PROXY_USER
from tests.dicom_samples import recorded, send_patient
from tests.helpers import DECISION_CACHE_SECONDS, Browser, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def patient(stack, orthanc, admin, tmp_path_factory):
    p = send_patient(
        stack,
        orthanc,
        tmp_path_factory.mktemp("outage"),
        f"PO-{uuid.uuid4().hex[:6]}",
        "OUTAGE^TEST",
        "ISO_IR 192",
    )
    wait_for(lambda: recorded(admin, p["study"]), 30, what="study recorded")
    p["password"] = admin.post(f"/api/patients/{p['pid']}/credentials", json={}).json()["password"]
    b = Browser(stack.public_url)
    assert b.login(patient_id=p["pid"], password=p["password"]).status_code == 200
    p["browser"] = b
    return p


def timed_get(browser, path):
    start = time.monotonic()
    r = browser.get(path)
    return r.status_code, time.monotonic() - start


def wait_until_granted(browser, path):
    wait_for(lambda: browser.get(path).status_code == 200, 20, what="access restored")


def test_service_stopped_means_403_fast(stack, patient):
    path = "/orthanc/studies/" + patient["study"]
    wait_until_granted(patient["browser"], path)
    time.sleep(DECISION_CACHE_SECONDS + 1.1)  # let the filter's cached grant expire
    stack.stop("authsvc")
    try:
        status, elapsed = timed_get(patient["browser"], path)
        assert status == 403
        assert elapsed < 3
    finally:
        stack.start_service()
    wait_until_granted(patient["browser"], path)


def test_while_the_service_is_stopped_only_cached_grants_answer(stack, patient):
    """docs/architecture.md ("Speed"): a grant the Lua filter cached keeps answering the
    hot reads (one resource by Orthanc ID, GET without a query: nginx's check
    is skipped for them) for up to DECISION_CACHE_SECONDS after the service
    stopped; every request nginx's check is asked about is refused at once."""
    path = "/orthanc/studies/" + patient["study"]
    wait_until_granted(patient["browser"], path)
    time.sleep(DECISION_CACHE_SECONDS + 1.1)  # whatever was cached has expired
    assert patient["browser"].get(path).status_code == 200  # asked now, cached now
    stack.stop("authsvc", signal.SIGKILL)
    try:
        assert patient["browser"].get(path).status_code == 200  # the cached grant
        status, elapsed = timed_get(patient["browser"], path + "?expand")  # nginx's check
        assert status == 403 and elapsed < 1
        time.sleep(DECISION_CACHE_SECONDS + 1.1)
        assert patient["browser"].get(path).status_code == 403  # the cache is over
    finally:
        stack.start_service()
    wait_until_granted(patient["browser"], path)


def test_service_hung_means_403_within_3s_and_orthanc_stays_responsive(stack, patient):
    path = "/orthanc/instances/" + patient["instance"] + "/file"
    wait_until_granted(patient["browser"], "/orthanc/studies/" + patient["study"])
    time.sleep(DECISION_CACHE_SECONDS + 1.1)
    pgid = stack.procs["authsvc"].pid
    os.killpg(pgid, signal.SIGSTOP)
    try:
        status, elapsed = timed_get(patient["browser"], path)
        assert status == 403
        assert elapsed < 3
        # While the service stays hung, nginx's check gives up after its 1 s
        # timeout, each time.
        for _ in range(3):
            status, elapsed = timed_get(patient["browser"], path)
            assert status == 403
            assert elapsed < 1.5
        # Orthanc itself stays responsive: its Lua filter, asked straight
        # (nginx's own user and the token), refuses at once instead of each
        # request waiting for the timeout under Orthanc's Lua lock, and the
        # service's own user is served meanwhile.
        direct = requests.Session()
        direct.auth = (PROXY_USER, stack.secrets["proxy_password"])
        direct.headers["token"] = patient["browser"].http.cookies.get("authsvc_session")
        timed_direct = []
        for _ in range(4):
            start = time.monotonic()
            status = direct.get(stack.orthanc_url + path[len("/orthanc") :], timeout=10).status_code
            timed_direct.append((status, time.monotonic() - start))
        assert all(status == 403 for status, _ in timed_direct), timed_direct
        assert all(elapsed < 1 for _, elapsed in timed_direct[1:]), timed_direct
        start = time.monotonic()
        r = requests.get(
            stack.orthanc_url + "/system",
            timeout=10,
            auth=("authsvc", stack.secrets["orthanc_password"]),
        )
        assert r.status_code == 200 and time.monotonic() - start < 1
    finally:
        os.killpg(pgid, signal.SIGCONT)
    wait_until_granted(patient["browser"], path)


def test_study_stable_while_service_down_is_recorded_after_restart(
    stack, orthanc, admin, tmp_path_factory
):
    stack.stop("authsvc")
    try:
        p = send_patient(
            stack,
            orthanc,
            tmp_path_factory.mktemp("down"),
            f"PD-{uuid.uuid4().hex[:6]}",
            "DOWN^WHILE",
            "ISO_IR 192",
        )
        # Let Orthanc declare it stable (StableAge 1 s) while nobody listens:
        # the Lua notification fails and is never sent again.
        wait_for(
            lambda: orthanc.get(f"{orthanc.base}/studies/{p['study']}").json()["IsStable"],
            30,
            what="study stable in Orthanc",
        )
    finally:
        stack.start_service()
    start = time.monotonic()
    row = wait_for(lambda: recorded(admin, p["study"]), 30, what="caught-up study")
    assert row["patient_has_login"] is True
    assert time.monotonic() - start < 30
    assert admin.post(f"/api/patients/{p['pid']}/credentials", json={}).status_code == 200


def send_many(stack, tmp, prefix, count):
    """`count` single-instance studies of `count` patients, in one storescu call."""
    from tests.dicom_samples import SeriesSpec, StudySpec, write_study

    written = [
        write_study(
            StudySpec(f"{prefix}-{n:02d}", f"MANY^N{n}", series=[SeriesSpec("CT", 1, {})]),
            tmp / f"{prefix}{n}",
        )
        for n in range(count)
    ]
    return written


def all_recorded_with_logins(admin, orthanc, written):
    rows = {
        s["study_instance_uid"]: s
        for s in admin.get("/api/studies", params={"limit": 1000}).json()["studies"]
    }
    return all(w.study_uid in rows and rows[w.study_uid]["patient_has_login"] for w in written)


def test_service_killed_during_an_ingest_of_20_studies_loses_none(stack, orthanc, admin, tmp_path):
    written = send_many(stack, tmp_path, f"K{uuid.uuid4().hex[:4]}", 20)
    files = [f for w in written for f in w.files]
    import threading

    from tests.dicom_samples import storescu

    sender = threading.Thread(target=lambda: storescu(files[:10], stack.site["dicom_port"]))
    sender.start()
    time.sleep(1.5)  # some studies stable and notified, some not yet
    stack.stop("authsvc", signal.SIGKILL)
    try:
        sender.join()
        assert storescu(files[10:], stack.site["dicom_port"]).returncode == 0
        time.sleep(3)  # the last ones become stable while nobody listens
    finally:
        stack.start_service()
    wait_for(
        lambda: all_recorded_with_logins(admin, orthanc, written),
        30,
        what="all 20 studies recorded with logins after the restart",
    )


def test_orthanc_restarted_mid_ingest_is_caught_up(stack, orthanc, admin, tmp_path):
    written = send_many(stack, tmp_path, f"R{uuid.uuid4().hex[:4]}", 8)
    from tests.dicom_samples import storescu

    assert storescu([f for w in written for f in w.files], stack.site["dicom_port"]).returncode == 0
    # Stopped before the studies are stable (StableAge 1 s): their StableStudy
    # events will never come, Orthanc keeps that state in memory only.
    stack.stop("orthanc")
    stack.start_orthanc()
    wait_for(
        lambda: all_recorded_with_logins(admin, orthanc, written),
        45,
        what="studies of the interrupted ingest recorded",
    )
