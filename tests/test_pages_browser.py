"""The people's side in a real browser (Debian's headless Chromium) against the
real stack with real DICOM: the staff dashboard sees a study sent during the
test appear without reloading, prints its slip, whose QR code decodes to the
expected URL; a phone opens that URL, logs in with one tap, sees exactly the
patient's studies, views an image, downloads the ZIP, logs out, and the back
button shows nothing. In Spanish (no English string from the app) and in
English. Screenshots are kept; their folder is printed at the end."""

import re
import uuid
import zipfile
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

import chromium
from chromium import decode_qr, fetch_status, image_spread, pdf_page_size_mm, pdf_pages, wait
from conftest import ADMIN_PASSWORD, Browser, wait_for
from dicom_samples import recorded, send_patient

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "authsvc" / "translations" / "es" / "LC_MESSAGES" / "messages.po"


@pytest.fixture(scope="module")
def shots(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    yield folder
    # Printed past pytest's capture, so that CI's log shows where they are.
    plugins = request.config.pluginmanager
    reporter, capture = plugins.getplugin("terminalreporter"), plugins.getplugin("capturemanager")
    if reporter and capture:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\npage screenshots: {folder}")


@pytest.fixture(scope="module")
def world(stack, orthanc, admin, tmp_path_factory):
    """Patient B exists before the tests start (A is sent during a test)."""
    if chromium.missing():
        pytest.fail("headless Chromium is needed: install Debian's chromium and "
                    f"chromium-driver (missing: {chromium.missing()})")
    suffix = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("pages-dicom")
    b = send_patient(stack, orthanc, tmp, f"PB-{suffix}", "PEÑA^ÁNGELA", "ISO_IR 100")
    wait_for(lambda: recorded(admin, b["study"]), 30, what="study of B recorded")
    return {"suffix": suffix, "tmp": tmp, "B": b, "base": stack.public_url}


@pytest.fixture(scope="module")
def staff(world):
    driver = chromium.start("es")
    yield driver
    driver.quit()


def english_strings():
    """Every English message of the app whose Spanish text differs (words of
    three letters or more), to be looked for in Spanish pages."""
    with open(CATALOG, "rb") as fh:
        catalog = read_po(fh)
    found = set()
    for m in catalog:
        if m.id and m.string and m.id != m.string:
            for part in re.split(r"%\(\w+\)s", m.id):
                part = part.strip(" .:;,?()")
                if len(part) >= 3 and part.lower() not in m.string.lower():
                    found.add(part)
    return found


def visible_text(driver):
    """The text of the page and of its screen-reader labels and titles."""
    return "\n".join([driver.title, driver.find_element(By.TAG_NAME, "body").text] + driver.execute_script(
        "return [...document.querySelectorAll('[aria-label],[alt],[title],[placeholder]')]"
        ".map(e => [e.getAttribute('aria-label'), e.getAttribute('alt'), e.getAttribute('title'),"
        " e.getAttribute('placeholder')].filter(Boolean).join(' '))"))


def assert_no_english(driver):
    text = visible_text(driver)
    leaked = [s for s in english_strings() if re.search(r"(?<!\w)" + re.escape(s) + r"(?!\w)", text)]
    assert not leaked, f"English on a Spanish page {driver.current_url}: {leaked}"


def staff_login(driver, base):
    driver.get(base + "/staff/login")
    driver.find_element(By.ID, "username").send_keys("admin")
    driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD + Keys.ENTER)  # keyboard only
    wait(driver, lambda d: d.current_url.endswith("/staff"), what="dashboard")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#rows tr"), what="rows")


def row(driver, study):
    return driver.find_element(By.CSS_SELECTOR, f'#rows tr[data-study="{study}"]')


def test_staff_sees_a_new_study_appear_without_reloading(stack, orthanc, world, staff, shots):
    staff_login(staff, world["base"])
    assert_no_english(staff)
    staff.execute_script("window.__sameDocument = 'yes';")
    pid = f"PA-{world['suffix']}"
    a = send_patient(stack, orthanc, world["tmp"], pid, "NÚÑEZ^JOSÉ", "ISO_IR 192")
    world["A"] = a
    tr = wait(staff, lambda d: row(d, a["study"]), timeout=60, what="the new study's row")
    # The same document: the row came by polling, not by a reload.
    assert staff.execute_script("return window.__sameDocument") == "yes"
    text = tr.text
    assert "NÚÑEZ, JOSÉ" in text and pid in text and "TORAX" in text and "CT, MR" in text
    assert "28 nov 2026" in text  # the study date in Spanish
    assert "Contraseña nueva: hoja sin imprimir" in text
    password = tr.find_element(By.CSS_SELECTOR, ".pw").text
    assert re.fullmatch(r"[a-z2-9]{4} [a-z2-9]{4} [a-z2-9]{4}", password), password
    world["A"]["password"] = password.replace(" ", "-")
    staff.save_screenshot(str(shots / "01-dashboard-es.png"))


def test_search_by_name_and_id(world, staff):
    search = staff.find_element(By.ID, "q")
    search.send_keys("pena angela")
    # Other tests of the session may have sent patients of the same name: B
    # must be found, and every row shown must be one of the same name.
    def only_pena(d):
        rows = d.find_elements(By.CSS_SELECTOR, "#rows tr")
        patients = {r.get_attribute("data-patient") for r in rows}
        return world["B"]["study"] in [r.get_attribute("data-study") for r in rows] \
            and world["A"]["pid"] not in patients \
            and all("ÁNGELA" in r.text.upper() or "ANGELA" in r.text.upper() for r in rows)
    wait(staff, only_pena, what="B's study, and only patients named Peña Ángela")
    search.clear()
    search.send_keys(world["A"]["pid"])
    wait(staff, lambda d: [r.get_attribute("data-study") for r in d.find_elements(By.CSS_SELECTOR, "#rows tr")]
         == [world["A"]["study"]], what="only A's study")
    search.clear()
    staff.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    wait(staff, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) >= 2, what="all rows")


def test_print_slip_with_qr_code(world, staff, shots):
    a = world["A"]
    dashboard = staff.current_window_handle
    row(staff, a["study"]).find_element(By.CSS_SELECTOR, "a.print").click()
    wait(staff, lambda d: len(d.window_handles) == 2, what="the slip's tab")
    staff.switch_to.window([h for h in staff.window_handles if h != dashboard][0])
    slip = wait(staff, lambda d: d.find_element(By.ID, "slip"), what="the slip")
    # Opened with one click, it printed at once and asks whether it printed well.
    wait(staff, lambda d: d.find_element(By.ID, "confirm").is_displayed(), what="the print question")
    text = slip.text
    assert slip.get_attribute("lang") == "es"
    for expected in ("Hospital", "NÚÑEZ, JOSÉ", a["pid"], "28 nov 2026", world["base"],
                     "ID del paciente", "Contraseña", "Sin esta contraseña"):
        assert expected in text, expected
    groups = [s.text for s in slip.find_elements(By.CSS_SELECTOR, "#slip-pw span")]
    assert "-".join(groups) == a["password"]
    qr = slip.find_element(By.CSS_SELECTOR, "#slip-qr svg")
    expected_url = f"{world['base']}/#id={a['pid']}&pw={a['password']}"
    assert decode_qr(qr.screenshot_as_png) == [expected_url]
    world["A"]["qr_url"] = expected_url
    assert_no_english(staff)
    staff.save_screenshot(str(shots / "02-slip-a6-es.png"))
    # On paper: an A6 sheet (the same slip, opened without printing at once).
    staff.get(staff.current_url.replace("&print=1", ""))
    wait(staff, lambda d: d.find_element(By.ID, "slip"), what="the slip")
    width, height, pdf = pdf_page_size_mm(staff)
    (shots / "02-slip-a6-es.pdf").write_bytes(pdf)
    assert (width, height) == pytest.approx((105, 148), abs=1)
    assert pdf_pages(pdf) == 1  # the whole slip on one sheet
    # An A5 sheet.
    staff.get(staff.current_url.replace("layout=a6", "layout=a5"))
    width, height, pdf = pdf_page_size_mm(staff)
    assert (width, height) == pytest.approx((148, 210), abs=1) and pdf_pages(pdf) == 1
    # The 80 mm receipt layout, in English.
    slip_url = staff.current_url.split("?")[0] + f"?study={a['study']}&layout=thermal&slip_lang=en"
    staff.get(slip_url)
    thermal = staff.find_element(By.ID, "slip")
    assert thermal.get_attribute("lang") == "en" and "Patient ID" in thermal.text
    assert "Without this password" in thermal.text
    assert decode_qr(thermal.find_element(By.CSS_SELECTOR, "#slip-qr svg").screenshot_as_png) == [expected_url]
    width, _, pdf = pdf_page_size_mm(staff)
    (shots / "03-slip-thermal-en.pdf").write_bytes(pdf)
    assert width == pytest.approx(80, abs=1) and pdf_pages(pdf) == 1
    staff.save_screenshot(str(shots / "03-slip-thermal-en.png"))
    # Printed: the password is wiped, here and on the dashboard.
    staff.find_element(By.ID, "print").click()
    wait(staff, lambda d: d.find_element(By.ID, "confirm").is_displayed(), what="the print question")
    staff.find_element(By.ID, "printed").click()
    wait(staff, lambda d: d.find_element(By.ID, "done").is_displayed(), what="done")
    assert not staff.find_elements(By.ID, "slip")
    staff.close()
    staff.switch_to.window(dashboard)
    wait(staff, lambda d: "Hoja impresa" in row(d, a["study"]).text
         and not row(d, a["study"]).find_elements(By.CSS_SELECTOR, ".pw"),
         timeout=20, what="slip printed on the dashboard, password gone")
    staff.get(slip_url)
    assert not staff.find_elements(By.ID, "slip")
    assert staff.find_element(By.ID, "reissue")


def patient_phone(language, downloads=None):
    return chromium.start(language, phone=True, downloads=downloads)


def test_patient_phone_flow_in_spanish(world, shots, tmp_path):
    a, b = world["A"], world["B"]
    phone = patient_phone("es", downloads=tmp_path)
    try:
        # Scanning the QR code opens its URL: the form is filled from the fragment.
        phone.get(a["qr_url"])
        assert phone.execute_script("return [innerWidth, innerHeight]") == [390, 844]
        assert phone.find_element(By.ID, "patient_id").get_attribute("value") == a["pid"]
        assert phone.find_element(By.ID, "password").get_attribute("value") == a["password"]
        assert "Sin esta contraseña" in phone.find_element(By.ID, "splash-warning").text
        assert_no_english(phone)
        phone.save_screenshot(str(shots / "04-phone-splash-es.png"))
        phone.find_element(By.ID, "login-button").click()  # the one tap
        wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")
        cards = phone.find_elements(By.CSS_SELECTOR, "#studies li.study")
        assert [c.get_attribute("data-study") for c in cards] == [a["study"]]
        assert "28 nov 2026" in cards[0].text and "CT, MR" in cards[0].text
        assert "PEÑA" not in phone.page_source and b["study"] not in phone.page_source
        wait(phone, lambda d: d.execute_script(
            "const i = document.querySelector('img.thumb'); return i.complete && i.naturalWidth > 0"),
            what="the thumbnail")
        assert_no_english(phone)
        phone.save_screenshot(str(shots / "05-phone-portal-es.png"))

        # The viewer: an image is drawn, the next slice too, zoom works.
        cards[0].find_element(By.CSS_SELECTOR, "a.view").click()
        stage = wait(phone, lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded")
                     and d.find_element(By.ID, "stage"), what="the first image")
        assert image_spread(phone, "frame") > 30, "the image is blank"
        assert phone.find_element(By.ID, "slice").get_attribute("max") == "2"
        first = phone.find_element(By.ID, "frame").get_attribute("src")
        phone.find_element(By.ID, "next").click()
        wait(phone, lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded") not in ("", first)
             and d.find_element(By.ID, "stage").get_attribute("data-index") == "1", what="the next image")
        assert image_spread(phone, "frame") > 30
        # A contrast preset (CT): Orthanc renders the slice with that window.
        Select(phone.find_element(By.ID, "preset")).select_by_value("-600,1500")
        wait(phone, lambda d: "window-center=-600" in (d.find_element(By.ID, "stage").get_attribute("data-loaded") or ""),
             what="the slice with the lung window")
        assert image_spread(phone, "frame") > 30
        phone.find_element(By.ID, "zoom-in").click()
        assert float(stage.get_attribute("data-zoom")) > 1
        phone.execute_script("window.scrollTo(0, 0)")
        phone.save_screenshot(str(shots / "06-phone-viewer-es.png"))
        series_buttons = phone.find_elements(By.CSS_SELECTOR, "#series button")
        assert len(series_buttons) == 2
        series_buttons[1].click()
        wait(phone, lambda d: d.find_element(By.ID, "stage").get_attribute("data-index") == "0"
             and "MR" in d.find_element(By.CSS_SELECTOR, "#series button[aria-pressed=true]").text,
             what="the second series")
        wait(phone, lambda d: image_spread(d, "frame") > 30, what="an MR image drawn")
        assert not phone.find_element(By.ID, "preset").is_displayed()  # CT windows only
        href = phone.find_element(By.ID, "webviewer").get_attribute("href")
        assert "/orthanc/web-viewer/app/viewer.html?series=" in href
        assert href.split("series=")[1] in a["all_series"]
        assert_no_english(phone)

        # Download: a ZIP of the study's DICOM files.
        phone.find_element(By.ID, "download").click()
        zips = wait(phone, lambda d: [p for p in tmp_path.iterdir() if p.suffix == ".zip"],
                    timeout=60, what="the downloaded ZIP")
        with zipfile.ZipFile(zips[0]) as archive:
            files = [archive.read(n) for n in archive.namelist() if not n.endswith("/")]
        dicom = [f for f in files if f[128:132] == b"DICM"]
        assert len(dicom) == len(a["all_instances"]) == 4

        # Another patient's study: not by link, not by guessing its URL.
        phone.get(world["base"] + "/portal/studies/" + b["study"])
        assert "PEÑA" not in phone.page_source and "no es uno de los suyos" in phone.page_source
        assert fetch_status(phone, f"/portal/api/studies/{b['study']}/series") == 404
        assert fetch_status(phone, f"/orthanc/studies/{b['study']}") == 403
        assert fetch_status(phone, f"/orthanc/instances/{b['instance']}/preview") == 403

        # Logout; then neither back nor reload shows patient data.
        phone.get(world["base"] + "/portal/studies/" + a["study"])
        wait(phone, lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"), what="viewer")
        phone.find_element(By.ID, "logout").click()
        wait(phone, lambda d: d.current_url.rstrip("/") == world["base"], what="back at the splash")
        assert phone.find_element(By.ID, "login-button")
        for step in (phone.back, phone.refresh):
            step()
            wait(phone, lambda d: d.execute_script("return document.readyState") == "complete", what="page")
            source = phone.page_source
            assert "NÚÑEZ" not in source and a["study"] not in source and "TORAX" not in source, step
        assert fetch_status(phone, "/api/session") == 401
        phone.save_screenshot(str(shots / "07-phone-after-logout-back.png"))
    finally:
        phone.quit()


def test_reissue_after_warning_then_english_phone_flow(world, staff, shots):
    b = world["B"]
    staff.get(world["base"] + "/staff")
    # B's first password, shown since ingest (its slip was never printed).
    old = wait(staff, lambda d: row(d, b["study"]).find_element(By.CSS_SELECTOR, ".pw").text,
               what="B's row").replace(" ", "-")
    holder = Browser(world["base"])
    assert holder.login(patient_id=b["pid"], password=old).status_code == 200
    # Dismissing the warning changes nothing.
    row(staff, b["study"]).find_element(By.CSS_SELECTOR, "button.reissue").click()
    wait(staff, lambda d: d.switch_to.alert, what="the warning").dismiss()
    assert holder.get("/api/session").status_code == 200
    row(staff, b["study"]).find_element(By.CSS_SELECTOR, "button.reissue").click()
    alert = wait(staff, lambda d: d.switch_to.alert, what="the warning")
    assert "dejan de funcionar" in alert.text and "PEÑA, ÁNGELA" in alert.text
    alert.accept()
    password = wait(staff, lambda d: (lambda t: t != old.replace("-", " ") and t)(
        row(d, b["study"]).find_element(By.CSS_SELECTOR, ".pw").text), what="B's new password")
    password = password.replace(" ", "-")
    # The old slip stops working, and so do its sessions.
    assert holder.get("/api/session").status_code == 401
    assert Browser(world["base"]).login(patient_id=b["pid"], password=old).status_code == 401

    phone = patient_phone("en-US")
    try:
        phone.get(f"{world['base']}/#id={b['pid']}&pw={password}")
        assert phone.find_element(By.ID, "login-button").text == "Log in"
        assert "Without this password" in phone.find_element(By.ID, "splash-warning").text
        phone.find_element(By.ID, "login-button").click()
        wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")
        assert phone.find_element(By.TAG_NAME, "h1").text == "Your studies"
        cards = phone.find_elements(By.CSS_SELECTOR, "#studies li.study")
        assert [c.get_attribute("data-study") for c in cards] == [b["study"]]
        assert "Nov 28, 2026" in cards[0].text
        assert "NÚÑEZ" not in phone.page_source
        phone.save_screenshot(str(shots / "08-phone-portal-en.png"))
        # The switch on every page: to Spanish and back.
        phone.find_element(By.CSS_SELECTOR, 'a.lang-link[lang="es"]').click()
        wait(phone, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Sus estudios", what="Spanish")
        assert "28 nov 2026" in phone.find_element(By.ID, "studies").text
        assert phone.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es"
        phone.find_element(By.CSS_SELECTOR, 'a.lang-link[lang="en"]').click()
        wait(phone, lambda d: d.find_element(By.TAG_NAME, "h1").text == "Your studies", what="English")
        phone.find_element(By.ID, "logout").click()
        wait(phone, lambda d: d.current_url.rstrip("/") == world["base"], what="the splash")
    finally:
        phone.quit()


def test_wrong_password_message_in_both_languages(world):
    for language, expected in (("es", "ID o contraseña incorrectos."), ("en", "Wrong ID or password.")):
        phone = patient_phone(language)
        try:
            phone.get(f"{world['base']}/#id={world['B']['pid']}&pw=zzzz-zzzz-zzzz")
            phone.find_element(By.ID, "login-button").click()
            wait(phone, lambda d: d.find_element(By.ID, "message").text == expected, what=expected)
            assert phone.current_url.split("#")[0].rstrip("/") == world["base"]
        finally:
            phone.quit()


def test_staff_logout_is_real(world, staff):
    staff.get(world["base"] + "/staff")
    wait(staff, lambda d: d.find_elements(By.CSS_SELECTOR, "#rows tr"), what="rows")
    staff.find_element(By.ID, "logout").click()
    wait(staff, lambda d: d.current_url.rstrip("/") == world["base"], what="the splash")
    assert fetch_status(staff, "/staff/api/studies") == 401
    staff.back()
    wait(staff, lambda d: d.current_url.endswith("/staff/login"), what="the staff login")
    assert "NÚÑEZ" not in staff.page_source
