"""In a real browser on a small phone (360x640): the
viewer's controls are all on the screen without scrolling; a share's, a
slip's or the physicians' link opened in a tab already on the site works
(the fragment is read on hashchange too); logging out says so; the login
page tells what to do about a lost slip."""

import uuid

import pytest
from selenium.webdriver.common.by import By

from tests import chromium
from tests.chromium import wait
from tests.dicom_samples import SeriesSpec, StudySpec, send_recorded
from tests.helpers import Browser
from tests.phone import log_in_patient, small_phone

pytestmark = [pytest.mark.stack, pytest.mark.browser]

# No "webviewer": the full viewer is not offered to patients (test_download_browser.py).
CONTROLS = [
    "prev",
    "slice",
    "next",
    "zoom-out",
    "zoom-reset",
    "zoom-in",
    "preset",
    "full-quality",
    "download",
    "logout",
]


@pytest.fixture(scope="module")
def patient(stack, orthanc, admin, tmp_path_factory):
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    spec = StudySpec(
        f"PF-{uuid.uuid4().hex[:6]}",
        "PEQUEÑO^LUIS",
        description="TORAX ALTA RESOLUCION",
        series=[SeriesSpec("CT", 3), SeriesSpec("MR", 2)],
    )
    _, study, password = send_recorded(
        stack, orthanc, admin, spec, tmp_path_factory.mktemp("small")
    )
    owner = Browser(stack.public_url)
    assert owner.login(patient_id=spec.patient_id, password=password).status_code == 200
    share = owner.post("/api/shares", json={"study": study, "days": 1}).json()["url"]
    return {
        "pid": spec.patient_id,
        "password": password,
        "study": study,
        "share": share,
        "base": stack.public_url,
    }


@pytest.mark.parametrize("language", ["es", "en"])
def test_the_viewer_fits_a_small_phone(patient, language):
    phone = small_phone(language)
    try:
        log_in_patient(phone, patient)
        phone.get(f"{patient['base']}/portal/studies/{patient['study']}")
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"),
            what="an image",
        )
        phone.execute_script("window.scrollTo(0, 0)")
        height = phone.execute_script("return innerHeight")
        assert height == 640
        off = {}
        for control in CONTROLS + ["stage"]:
            box = phone.execute_script(
                "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
                "return [r.top, r.bottom, r.width, r.height];",
                control,
            )
            if not (box[0] >= 0 and box[1] <= height and box[2] > 0 and box[3] > 0):
                off[control] = box
        for button in phone.find_elements(By.CSS_SELECTOR, "#series button"):
            r = phone.execute_script("return arguments[0].getBoundingClientRect().bottom", button)
            if r > height:
                off[button.text] = r
        assert not off, f"off the screen of {height} px: {off}"
        top = phone.execute_script(
            "return document.querySelector('header.top').getBoundingClientRect().height"
        )
        stage = phone.execute_script(
            "return document.getElementById('stage').getBoundingClientRect().height"
        )
        assert top <= 56 and stage >= 250, (top, stage)
        # Touch targets stay large enough to hit.
        for control in ["prev", "next", "zoom-in", "full-quality"]:
            h = phone.execute_script(
                "return document.getElementById(arguments[0]).getBoundingClientRect().height",
                control,
            )
            assert h >= 36, (control, h)
    finally:
        phone.quit()


def test_links_opened_in_a_tab_already_on_the_site(patient):
    phone = small_phone("es")
    try:
        phone.get(patient["base"] + "/")
        phone.execute_script("window.__sameDocument = 'yes'")
        # The physicians' link: the form unfolds.
        phone.execute_script("location.hash = '#physician'")
        wait(
            phone,
            lambda d: d.find_element(By.ID, "rule-name").is_displayed(),
            what="the physician's form",
        )
        # The slip's QR code: the form is filled.
        phone.execute_script(
            "location.hash = arguments[0]", f"#id={patient['pid']}&pw={patient['password']}"
        )
        wait(
            phone,
            lambda d: d.find_element(By.ID, "patient_id").get_attribute("value") == patient["pid"],
            what="the ID filled in",
        )
        assert phone.find_element(By.ID, "password").get_attribute("value") == patient["password"]
        assert phone.execute_script("return window.__sameDocument") == "yes"
        # A share's link: opened at once.
        phone.execute_script(
            "location.hash = arguments[0]", "#" + patient["share"].split("#", 1)[1]
        )
        wait(phone, lambda d: d.current_url.endswith("/portal"), what="the shared studies")
        assert [
            c.get_attribute("data-study")
            for c in phone.find_elements(By.CSS_SELECTOR, "#studies li.study")
        ] == [patient["study"]]
    finally:
        phone.quit()


@pytest.mark.parametrize("language, text", [("es", "Sesión cerrada."), ("en", "Session closed.")])
def test_logging_out_says_so(patient, language, text):
    phone = small_phone(language)
    try:
        log_in_patient(phone, patient)
        phone.find_element(By.ID, "logout").click()
        message = wait(
            phone, lambda d: d.find_element(By.ID, "logged-out"), what="the logout message"
        )
        assert message.text == text and message.get_attribute("role") == "status"
        # Only after a logout: the page reloaded, or opened anew, does not say it.
        phone.get(patient["base"] + "/")
        assert not phone.find_elements(By.ID, "logged-out")
    finally:
        phone.quit()


@pytest.mark.parametrize("language, text", [("es", "¿Perdió su hoja?"), ("en", "Lost your slip?")])
def test_the_login_page_says_what_to_do_about_a_lost_slip(patient, language, text):
    phone = small_phone(language)
    try:
        phone.get(patient["base"] + "/")
        assert text in phone.find_element(By.ID, "lost-slip").text
    finally:
        phone.quit()
