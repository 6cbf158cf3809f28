"""A small phone (360x640) in headless Chromium, and logging in on it: as a
patient, a share's holder or a rule login (`log_in_as`), or as a patient
only (`log_in_patient`). Shared by the phone's browser tests (reports,
downloads, images, the access log, the small phone's viewer)."""

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests import chromium
from tests.chromium import wait

SMALL_PHONE = {"width": 360, "height": 640}


def small_phone(language):
    saved = dict(chromium.PHONE)
    chromium.PHONE.clear()
    chromium.PHONE.update(SMALL_PHONE)
    try:
        return chromium.start(language, phone=True)
    finally:
        chromium.PHONE.clear()
        chromium.PHONE.update(saved)


def log_in_as(phone, who, logins):
    """Log in as `who` ("patient", "share" or "rule") up to the portal.
    `logins`: "base" (the public URL), "R" (the patient's "pid" and
    "password"), "share_url", "rule" and "rule_password"."""
    base, r = logins["base"], logins["R"]
    if who == "patient":
        phone.get(f"{base}/#id={r['pid']}&pw={r['password']}")
        phone.find_element(By.ID, "login-button").click()
    elif who == "share":
        phone.get(logins["share_url"])
    else:
        phone.get(base + "/#physician")
        wait(
            phone,
            lambda d: d.find_element(By.ID, "rule-name").is_displayed(),
            what="the physician's form",
        )
        phone.find_element(By.ID, "rule-name").send_keys(logins["rule"])
        phone.find_element(By.ID, "rule-password").send_keys(logins["rule_password"] + Keys.ENTER)
    wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")


def log_in_patient(phone, patient):
    """The patient (`patient`'s "base", "pid" and "password") logs in with the
    slip's link, up to the portal."""
    phone.get(f"{patient['base']}/#id={patient['pid']}&pw={patient['password']}")
    phone.find_element(By.ID, "login-button").click()
    wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")
