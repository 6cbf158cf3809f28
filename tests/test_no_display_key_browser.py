"""A server without a display key keeps no copy of a reissued password for
its slip (authsvc/display.py): the dashboard and the slip page then show the
new password once, from the reissue's answer, in headless Chromium against
the service itself (no Orthanc: the pages only)."""

import threading

import pytest
from selenium.webdriver.common.by import By
from werkzeug.serving import make_server

from authsvc import ingest
from authsvc.cli import ensure_admin
from authsvc.db import database
from tests import chromium
from tests.chromium import wait
from tests.helpers import fake_study
from tests.pages_world import STAFF_PASSWORD, make_app

pytestmark = pytest.mark.browser


@pytest.fixture
def keyless(tmp_path, database_url):
    if chromium.missing():
        pytest.fail(f"Chromium is needed: missing {chromium.missing()}")
    app = make_app(tmp_path, database_url, display_key=None)
    data = fake_study("P-9", "9", name="PEÑA^ÁNGELA")
    ingest.store_study(data["study_orthanc_id"], data)
    ensure_admin("admin", STAFF_PASSWORD)
    login = app.test_client().post(
        "/api/login", json={"username": "admin", "password": STAFF_PASSWORD}
    )
    token = login.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    driver = chromium.start("en")
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        driver.get(base + "/api/health")
        driver.add_cookie({"name": app.config["SESSION_COOKIE_NAME"], "value": token, "path": "/"})
        yield {"app": app, "driver": driver, "base": base, "study": data["study_orthanc_id"]}
    finally:
        driver.quit()
        server.shutdown()
        database.close()


def _logs_in(app, password):
    r = app.test_client().post("/api/login", json={"patient_id": "P-9", "password": password})
    return r.status_code == 200


def _password_in(text):
    """The password a message names: the word of dash-separated groups."""
    return next(w.rstrip(".") for w in text.split() if w.count("-") >= 2)


def test_the_dashboard_shows_the_password_once(keyless):
    driver = keyless["driver"]
    driver.get(keyless["base"] + "/staff")
    # No copy: the row offers a reprint, which is a new password.
    button = wait(
        driver,
        lambda d: d.find_element(
            By.CSS_SELECTOR, f'tr[data-study="{keyless["study"]}"] button.reprint'
        ),
        what="the reprint button",
    )
    button.click()
    wait(driver, lambda d: d.switch_to.alert, what="the warning").accept()
    status = wait(
        driver,
        lambda d: (lambda t: "keeps no copy" in t and t)(d.find_element(By.ID, "status").text),
        what="the new password",
    )
    assert "PEÑA, ÁNGELA" in status
    assert _logs_in(keyless["app"], _password_in(status))
    # The page stayed (no slip could show the password).
    assert driver.current_url == keyless["base"] + "/staff"


def test_the_slip_page_shows_the_password_once(keyless):
    driver = keyless["driver"]
    driver.get(keyless["base"] + "/staff/slips/P-9")
    wait(driver, lambda d: d.find_element(By.ID, "reissue"), what="the reissue button").click()
    wait(driver, lambda d: d.switch_to.alert, what="the warning").accept()
    text = wait(
        driver,
        lambda d: (lambda t: "keeps no copy" in t and t)(d.find_element(By.ID, "message").text),
        what="the new password",
    )
    assert _logs_in(keyless["app"], _password_in(text))
