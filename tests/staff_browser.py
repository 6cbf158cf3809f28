"""The staff's pages in headless Chromium: the desk's screen sizes (DESKTOP,
TABLET), a browser whose viewport is one of them, and logging in as the
admin. Shared by tests/test_desk_browser.py, tests/test_pages_browser.py and
the other browser tests of the staff's side."""

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests import chromium
from tests.chromium import wait
from tests.helpers import ADMIN_PASSWORD

DESKTOP = (1366, 768)
TABLET = (800, 1280)


def open_browser(size, language="es"):
    """A browser whose viewport is exactly `size` (CSS px); 800 px wide is a
    touch tablet."""
    driver = chromium.start(language)
    width, height = size
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 1000},
    )
    if width < 1000:
        driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True})
    return driver


def log_in_staff(driver, base):
    """The admin logs in (keyboard only), up to the dashboard."""
    driver.get(base + "/staff/login")
    driver.find_element(By.ID, "username").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD + Keys.ENTER)
    wait(driver, lambda d: d.current_url.endswith("/staff"), what="the dashboard")


def staff_login(driver, base):
    """log_in_staff, then the dashboard's rows shown."""
    log_in_staff(driver, base)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#rows tr"), what="rows")
