"""A patient's first image of a study comes even while another writer holds
the service's database for a moment (a big study being recorded, a backup,
another decision's audit entry): the decision about an image does not wait
for the audit entry it causes (nginx's check gives the service 1 s; it was
refused, 403 after 1.0 s). And in a real browser, a slice whose request
failed (a dropped line, a busy server) is asked for again: a refused first
image used to leave the viewer blank for good."""

import threading
import time
import uuid
from contextlib import contextmanager

import pytest
from selenium.webdriver.common.by import By

from authsvc import audit
from tests import chromium
from tests.chromium import wait
from tests.dicom_samples import SeriesSpec, StudySpec, send_recorded
from tests.helpers import Browser
from tests.phone import log_in_patient, small_phone

pytestmark = pytest.mark.stack

HOLD_SECONDS = 1.5  # longer than nginx's check may wait (1 s)


@contextmanager
def audit_held(stack):
    """The audit log's append lock, taken by another connection, for
    HOLD_SECONDS from when the block starts (as a long write would)."""
    url = stack.site.get("database_url") or ""
    taken = threading.Event()

    def hold():
        if url:
            import psycopg2

            conn = psycopg2.connect(url)
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (audit._APPEND_LOCK,))
                    taken.set()
                    time.sleep(HOLD_SECONDS)
                conn.rollback()
            finally:
                conn.close()
        else:
            import sqlite3

            conn = sqlite3.connect(stack.data_dir / "authsvc.sqlite3", isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")
                taken.set()
                time.sleep(HOLD_SECONDS)
                conn.execute("ROLLBACK")
            finally:
                conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(10), "the lock was not taken"
    try:
        yield
    finally:
        thread.join(10)


def fresh_study(stack, orthanc, admin, folder):
    spec = StudySpec(f"PB-{uuid.uuid4().hex[:6]}", "OCUPADO^ANA", series=[SeriesSpec("CT", 2)])
    _, study, password = send_recorded(stack, orthanc, admin, spec, folder)
    return {"pid": spec.patient_id, "password": password, "study": study, "base": stack.public_url}


def test_first_image_while_the_database_is_busy(stack, orthanc, admin, tmp_path):
    patient = fresh_study(stack, orthanc, admin, tmp_path)
    b = Browser(stack.public_url)
    assert b.login(patient_id=patient["pid"], password=patient["password"]).status_code == 200
    instance = orthanc.get(f"{orthanc.base}/studies/{patient['study']}/instances").json()[0]["ID"]
    with audit_held(stack):
        start = time.monotonic()
        r = b.get(f"/orthanc/instances/{instance}/rendered?width=64&height=64")
        elapsed = time.monotonic() - start
    assert r.status_code == 200, (r.status_code, elapsed)


@pytest.mark.browser
def test_a_slice_that_failed_is_asked_for_again(stack, orthanc, admin, tmp_path):
    """The first slice's request fails (the line dropped it: Chromium blocks
    it); once the viewer has said so, the line comes back, and the slice
    comes without the patient doing anything."""
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    patient = fresh_study(stack, orthanc, admin, tmp_path)
    phone = small_phone("es")
    try:
        log_in_patient(phone, patient)
        phone.execute_cdp_cmd("Network.enable", {})
        phone.execute_cdp_cmd("Network.setBlockedURLs", {"urls": ["*/orthanc/instances/*"]})
        phone.get(f"{patient['base']}/portal/studies/{patient['study']}")
        wait(
            phone,
            lambda d: d.find_element(By.ID, "message").text.strip(),
            what="the viewer saying the image failed",
        )
        phone.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"),
            what="the slice, asked for again",
        )
        assert phone.find_element(By.ID, "message").text.strip() == ""
    finally:
        phone.quit()
