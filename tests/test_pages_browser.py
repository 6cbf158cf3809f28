"""The people's side in a real browser (Debian's headless Chromium) against the
real stack with real DICOM: the staff dashboard sees a study sent during the
test appear without reloading, prints its slip, whose QR code decodes to the
expected URL; a phone opens that URL, logs in with one tap, sees exactly the
patient's studies, views an image, downloads the ZIP, logs out, and the back
button shows nothing. In Spanish (no English string from the app) and in
English. Then the pages of rule logins and shares: a physician logs in from the splash and sees
exactly the studies their rule matches (not another study of the same
patient); a patient shares a study from a phone, a fresh browser opens the
link and sees only that study, the patient revokes it and the link then opens
nothing; staff see which rule logins see each study, the shares (and revoke
one) and the rules. Screenshots are kept; their folder is printed at the end."""

import re
import time
import uuid
import zipfile

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from authsvc.cli import set_rule_password
from tests import chromium
from tests.chromium import (
    assert_no_english,
    decode_qr,
    fetch_status,
    image_spread,
    pdf_page_size_mm,
    pdf_pages,
    wait,
)
from tests.dicom_samples import (
    SeriesSpec,
    StudySpec,
    lookup,
    recorded,
    send_patient,
    storescu,
    write_study,
)
from tests.helpers import DECISION_CACHE_SECONDS, Browser, add_rule_login, wait_for
from tests.staff_browser import staff_login

pytestmark = [pytest.mark.stack, pytest.mark.browser]


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
    """Patient B exists before the tests start (a new patient is sent during
    the dashboard's test, A by its own fixture)."""
    if chromium.missing():
        pytest.fail(
            "headless Chromium is needed: install Debian's chromium and "
            f"chromium-driver (missing: {chromium.missing()})"
        )
    suffix = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("pages-dicom")
    b = send_patient(stack, orthanc, tmp, f"PB-{suffix}", "PEÑA^ÁNGELA", "ISO_IR 100")
    wait_for(lambda: recorded(admin, b["study"]), 30, what="study of B recorded")
    return {"suffix": suffix, "tmp": tmp, "B": b, "base": stack.public_url}


@pytest.fixture(scope="module")
def patient_a(stack, orthanc, admin, world):
    """Patient A's study, recorded, its first password still on the dashboard
    (the slip not printed), and the slip's QR code's URL: what the slip's and
    the phone's tests start from, each run alone or in any order."""
    pid = f"PA-{world['suffix']}"
    a = send_patient(stack, orthanc, world["tmp"], pid, "NÚÑEZ^JOSÉ", "ISO_IR 192")
    wait_for(lambda: recorded(admin, a["study"]), 30, what="study of A recorded")
    studies = admin.get("/staff/api/studies", params={"q": pid}).json()["studies"]
    a["password"] = "-".join(next(r for r in studies if r["orthanc_id"] == a["study"])["password"])
    a["qr_url"] = f"{world['base']}/#id={pid}&pw={a['password']}"
    return a


@pytest.fixture(scope="module")
def staff_browser(world):
    driver = chromium.start("es")
    yield driver
    driver.quit()


@pytest.fixture
def staff(staff_browser, world):
    """The staff's browser on the dashboard, logged in, one window: whatever
    the test before did (logged out, left the slip's tab open)."""
    driver = staff_browser
    for handle in driver.window_handles[1:]:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(driver.window_handles[0])
    driver.get(world["base"] + "/staff/login")  # the dashboard when logged in
    if not driver.current_url.endswith("/staff"):
        staff_login(driver, world["base"])
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#rows tr"), what="rows")
    return driver


def row(driver, study):
    return driver.find_element(By.CSS_SELECTOR, f'#rows tr[data-study="{study}"]')


def test_staff_sees_a_new_study_appear_without_reloading(stack, orthanc, world, staff, shots):
    assert_no_english(staff)
    staff.execute_script("window.__sameDocument = 'yes';")
    pid = f"PN-{world['suffix']}"
    a = send_patient(stack, orthanc, world["tmp"], pid, "NÚÑEZ^JOSÉ", "ISO_IR 192")
    tr = wait(staff, lambda d: row(d, a["study"]), timeout=60, what="the new study's row")
    # The same document: the row came by polling, not by a reload.
    assert staff.execute_script("return window.__sameDocument") == "yes"
    text = tr.text
    assert "NÚÑEZ, JOSÉ" in text and pid in text and "TORAX" in text and "CT, MR" in text
    assert "28 nov 2026" in text  # the study date in Spanish
    assert "Hoja sin imprimir" in text
    password = tr.find_element(By.CSS_SELECTOR, ".pw").text
    assert re.fullmatch(r"[a-z2-9]{4} [a-z2-9]{4} [a-z2-9]{4}", password), password
    staff.save_screenshot(str(shots / "01-dashboard-es.png"))


def test_search_by_name_and_id(world, patient_a, staff):
    search = staff.find_element(By.ID, "q")
    search.send_keys("pena angela")

    # Other tests of the session may have sent patients of the same name: B
    # must be found, and every row shown must be one of the same name.
    def only_pena(d):
        rows = d.find_elements(By.CSS_SELECTOR, "#rows tr")
        patients = {r.get_attribute("data-patient") for r in rows}
        return (
            world["B"]["study"] in [r.get_attribute("data-study") for r in rows]
            and patient_a["pid"] not in patients
            and all("ÁNGELA" in r.text.upper() or "ANGELA" in r.text.upper() for r in rows)
        )

    wait(staff, only_pena, what="B's study, and only patients named Peña Ángela")
    search.clear()
    search.send_keys(patient_a["pid"])
    wait(
        staff,
        lambda d: [
            r.get_attribute("data-study") for r in d.find_elements(By.CSS_SELECTOR, "#rows tr")
        ]
        == [patient_a["study"]],
        what="only A's study",
    )
    search.clear()
    staff.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    wait(staff, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) >= 2, what="all rows")


def test_print_slip_with_qr_code(world, patient_a, staff, shots):
    a = patient_a
    dashboard = staff.current_window_handle
    wait(staff, lambda d: row(d, a["study"]), what="A's row").find_element(
        By.CSS_SELECTOR, "a.print"
    ).click()
    wait(staff, lambda d: len(d.window_handles) == 2, what="the slip's tab")
    staff.switch_to.window([h for h in staff.window_handles if h != dashboard][0])
    slip = wait(staff, lambda d: d.find_element(By.ID, "slip"), what="the slip")
    # Opened with one click, it printed at once and asks whether it printed well.
    wait(
        staff, lambda d: d.find_element(By.ID, "confirm").is_displayed(), what="the print question"
    )
    text = slip.text
    assert slip.get_attribute("lang") == "es"
    for expected in (
        "Hospital",
        "NÚÑEZ, JOSÉ",
        a["pid"],
        "28 nov 2026",
        world["base"],
        "ID del paciente",
        "Contraseña",
        "Sin esta contraseña",
        "¿Perdió su hoja?",
    ):  # what to do when it is lost, on the sheet too
        assert expected in text, expected
    groups = [s.text for s in slip.find_elements(By.CSS_SELECTOR, "#slip-pw span")]
    assert "-".join(groups) == a["password"]
    qr = slip.find_element(By.CSS_SELECTOR, "#slip-qr svg")
    expected_url = a["qr_url"]
    assert expected_url == f"{world['base']}/#id={a['pid']}&pw={a['password']}"
    assert decode_qr(qr.screenshot_as_png) == [expected_url]
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
    assert "Without this password" in thermal.text and "Lost your slip?" in thermal.text
    # The stack's public_url is loopback: the slip says it is void,
    # and the page's banner above it pushes the code below the window.
    assert "NOT VALID" in thermal.text
    thermal_qr = thermal.find_element(By.CSS_SELECTOR, "#slip-qr svg")
    staff.execute_script("arguments[0].scrollIntoView({block: 'center'})", thermal_qr)
    assert decode_qr(thermal_qr.screenshot_as_png) == [expected_url]
    width, _, pdf = pdf_page_size_mm(staff)
    (shots / "03-slip-thermal-en.pdf").write_bytes(pdf)
    assert width == pytest.approx(80, abs=1) and pdf_pages(pdf) == 1
    staff.save_screenshot(str(shots / "03-slip-thermal-en.png"))
    # Printed: the password is wiped, here and on the dashboard.
    staff.find_element(By.ID, "print").click()
    wait(
        staff, lambda d: d.find_element(By.ID, "confirm").is_displayed(), what="the print question"
    )
    staff.find_element(By.ID, "printed").click()
    wait(staff, lambda d: d.find_element(By.ID, "done").is_displayed(), what="done")
    assert not staff.find_elements(By.ID, "slip")
    staff.close()
    staff.switch_to.window(dashboard)
    wait(
        staff,
        lambda d: "Impresa el" in row(d, a["study"]).text
        and not row(d, a["study"]).find_elements(By.CSS_SELECTOR, ".pw"),
        timeout=20,
        what="slip printed on the dashboard, password gone",
    )
    staff.get(slip_url)
    assert not staff.find_elements(By.ID, "slip")
    assert staff.find_element(By.ID, "reissue")


def patient_phone(language, downloads=None):
    return chromium.start(language, phone=True, downloads=downloads)


def test_patient_phone_flow_in_spanish(world, patient_a, shots, tmp_path):
    a, b = patient_a, world["B"]
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
        wait(
            phone,
            lambda d: d.execute_script(
                "const i = document.querySelector('img.thumb'); return i.complete && i.naturalWidth > 0"
            ),
            what="the thumbnail",
        )
        assert_no_english(phone)
        phone.save_screenshot(str(shots / "05-phone-portal-es.png"))

        # The viewer: an image is drawn, the next slice too, zoom works.
        cards[0].find_element(By.CSS_SELECTOR, "a.view").click()
        stage = wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded")
            and d.find_element(By.ID, "stage"),
            what="the first image",
        )
        assert image_spread(phone, "frame") > 30, "the image is blank"
        assert phone.find_element(By.ID, "slice").get_attribute("max") == "2"
        first = phone.find_element(By.ID, "frame").get_attribute("src")
        phone.find_element(By.ID, "next").click()
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded") not in ("", first)
            and d.find_element(By.ID, "stage").get_attribute("data-index") == "1",
            what="the next image",
        )
        assert image_spread(phone, "frame") > 30
        # A contrast preset (CT): Orthanc renders the slice with that window.
        Select(phone.find_element(By.ID, "preset")).select_by_value("-600,1500")
        wait(
            phone,
            lambda d: "window-center=-600"
            in (d.find_element(By.ID, "stage").get_attribute("data-loaded") or ""),
            what="the slice with the lung window",
        )
        assert image_spread(phone, "frame") > 30
        phone.find_element(By.ID, "zoom-in").click()
        assert float(stage.get_attribute("data-zoom")) > 1
        phone.execute_script("window.scrollTo(0, 0)")
        phone.save_screenshot(str(shots / "06-phone-viewer-es.png"))
        series_buttons = phone.find_elements(By.CSS_SELECTOR, "#series button")
        assert len(series_buttons) == 2
        series_buttons[1].click()
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-index") == "0"
            and "MR" in d.find_element(By.CSS_SELECTOR, "#series button[aria-pressed=true]").text,
            what="the second series",
        )
        wait(phone, lambda d: image_spread(d, "frame") > 30, what="an MR image drawn")
        assert not phone.find_element(By.ID, "preset").is_displayed()  # CT windows only
        # Orthanc's English-only viewer is not offered to patients.
        assert not phone.find_elements(By.ID, "webviewer")
        assert_no_english(phone)

        # Download: a ZIP of the study's DICOM files.
        phone.find_element(By.ID, "download").click()
        zips = wait(
            phone,
            lambda d: [p for p in tmp_path.iterdir() if p.suffix == ".zip"],
            timeout=60,
            what="the downloaded ZIP",
        )
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
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"),
            what="viewer",
        )
        phone.find_element(By.ID, "logout").click()
        wait(phone, lambda d: d.current_url.rstrip("/") == world["base"], what="back at the splash")
        assert phone.find_element(By.ID, "login-button")
        for step in (phone.back, phone.refresh):
            step()
            wait(
                phone,
                lambda d: d.execute_script("return document.readyState") == "complete",
                what="page",
            )
            source = phone.page_source
            assert "NÚÑEZ" not in source and a["study"] not in source and "TORAX" not in source, (
                step
            )
        assert fetch_status(phone, "/api/session") == 401
        phone.save_screenshot(str(shots / "07-phone-after-logout-back.png"))
    finally:
        phone.quit()


def test_reissue_after_warning_then_english_phone_flow(world, staff, shots):
    b = world["B"]
    staff.get(world["base"] + "/staff")
    # B's first password, shown since ingest (its slip was never printed).
    old = wait(
        staff,
        lambda d: row(d, b["study"]).find_element(By.CSS_SELECTOR, ".pw").text,
        what="B's row",
    ).replace(" ", "-")
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
    password = wait(
        staff,
        lambda d: (lambda t: t != old.replace("-", " ") and t)(
            row(d, b["study"]).find_element(By.CSS_SELECTOR, ".pw").text
        ),
        what="B's new password",
    )
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
        wait(
            phone,
            lambda d: d.find_element(By.TAG_NAME, "h1").text == "Sus estudios",
            what="Spanish",
        )
        assert "28 nov 2026" in phone.find_element(By.ID, "studies").text
        assert phone.find_element(By.TAG_NAME, "html").get_attribute("lang") == "es"
        phone.find_element(By.CSS_SELECTOR, 'a.lang-link[lang="en"]').click()
        wait(
            phone,
            lambda d: d.find_element(By.TAG_NAME, "h1").text == "Your studies",
            what="English",
        )
        phone.find_element(By.ID, "logout").click()
        wait(phone, lambda d: d.current_url.rstrip("/") == world["base"], what="the splash")
    finally:
        phone.quit()


def test_wrong_password_message_in_both_languages(world):
    for language, expected in (
        ("es", "ID o contraseña incorrectos."),
        ("en", "Wrong ID or password."),
    ):
        phone = patient_phone(language)
        try:
            phone.get(f"{world['base']}/#id={world['B']['pid']}&pw=zzzz-zzzz-zzzz")
            phone.find_element(By.ID, "login-button").click()
            wait(
                phone,
                lambda d, expected=expected: d.find_element(By.ID, "message").text == expected,
                what=expected,
            )
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


# -- physicians and institutions, shares ----------------------------------------


@pytest.fixture(scope="module")
def tagged(stack, orthanc, admin, world):
    """Patient M with two studies: RODILLA, referred by Dra. Ríos, and CONTROL,
    referred by someone else; patient T with ABDOMEN, read by Dra. Ríos among
    others (a multi-valued tag, in ISO_IR 100). Her rule login, made for this
    module (a unique middle name), sees RODILLA and ABDOMEN only."""
    suffix = world["suffix"]
    doctor = f"RÍOS^CARMEN^{suffix.upper()}"
    specs = {
        "S1": StudySpec(
            f"PM-{suffix}",
            "MÁRQUEZ^LUCÍA",
            description="RODILLA",
            tags={"ReferringPhysicianName": doctor},
            series=[SeriesSpec("CT", 2)],
        ),
        "S2": StudySpec(
            f"PM-{suffix}",
            "MÁRQUEZ^LUCÍA",
            description="CONTROL",
            study_date="20261001",
            tags={"ReferringPhysicianName": "OTRO^MEDICO"},
            series=[SeriesSpec("MR", 2)],
        ),
        "S3": StudySpec(
            f"PT-{suffix}",
            "TORRES^PEDRO",
            charset="ISO_IR 100",
            description="ABDOMEN",
            tags={"NameOfPhysiciansReadingStudy": ["PEREZ^JUAN", doctor]},
            series=[SeriesSpec("CT", 2)],
        ),
    }
    studies = {}
    for key, spec in specs.items():
        written = write_study(spec, world["tmp"] / f"tagged-{key}")
        result = storescu(written.files, stack.site["dicom_port"])
        assert result.returncode == 0, result.stderr
        study = lookup(orthanc, written.study_uid)
        studies[key] = {
            "study": study,
            "pid": spec.patient_id,
            "instance": lookup(orthanc, written.sop_uids[0]),
            "patient": orthanc.get(f"{orthanc.base}/studies/{study}").json()["ParentPatient"],
        }
    for s in studies.values():
        wait_for(lambda s=s: recorded(admin, s["study"]), 30, what="study recorded")
    login = f"dra-rios-{suffix}"
    value = f"Rios^Carmen^{suffix}"  # no accents, another case: still her
    rules_path = add_rule_login(
        stack,
        {
            "login": login,
            "description": "Dra. Carmen Ríos",
            "rules": [
                {"tag": "ReferringPhysicianName", "value": value},
                {"tag": "NameOfPhysiciansReadingStudy", "value": value},
            ],
        },
    )
    password = set_rule_password(
        str(stack.data_dir / "rule-passwords.json"), str(rules_path), login
    )
    return dict(studies, login=login, password=password, rules_path=rules_path)


def cards(driver):
    return [
        c.get_attribute("data-study")
        for c in driver.find_elements(By.CSS_SELECTOR, "#studies li.study")
    ]


def wait_image(driver):
    wait(
        driver,
        lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"),
        what="an image",
    )
    assert image_spread(driver, "frame") > 30, "the image is blank"


def test_physician_logs_in_and_sees_exactly_their_studies(world, tagged, shots):
    s1, s2, s3 = tagged["S1"], tagged["S2"], tagged["S3"]
    phone = patient_phone("es")
    try:
        phone.get(world["base"] + "/")
        assert not phone.find_element(By.ID, "rule-name").is_displayed()
        toggle = phone.find_element(By.ID, "physician-toggle")
        assert toggle.text == "¿Es médico o institución?"
        toggle.click()
        wait(
            phone,
            lambda d: d.find_element(By.ID, "rule-name").is_displayed(),
            what="the physician's form",
        )
        assert_no_english(phone)
        phone.save_screenshot(str(shots / "09-physician-login-es.png"))
        # A capital typed on a phone is forgiven (logins are lower case).
        phone.find_element(By.ID, "rule-name").send_keys(tagged["login"].capitalize())
        phone.find_element(By.ID, "rule-password").send_keys("wrong-wrong-wrong" + Keys.ENTER)
        wait(
            phone,
            lambda d: d.find_element(By.ID, "rule-message").text
            == "Nombre de usuario o contraseña incorrectos.",
            what="the wrong-password message",
        )
        phone.find_element(By.ID, "rule-password").clear()
        phone.find_element(By.ID, "rule-password").send_keys(tagged["password"] + Keys.ENTER)
        wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")
        assert phone.find_element(By.TAG_NAME, "h1").text == "Estudios que puede ver"
        # Exactly the studies naming her: not CONTROL, the same patient's other study.
        assert sorted(cards(phone)) == sorted([s1["study"], s3["study"]])
        assert s2["study"] not in phone.page_source and "CONTROL" not in phone.page_source
        text = phone.find_element(By.ID, "studies").text
        assert "MÁRQUEZ, LUCÍA" in text and s1["pid"] in text  # whose study it is
        assert "TORRES, PEDRO" in text and s3["pid"] in text
        assert not phone.find_elements(By.ID, "sharing") and not phone.find_elements(
            By.CSS_SELECTOR, ".share-study"
        )
        wait(
            phone,
            lambda d: d.execute_script(
                "return [...document.querySelectorAll('img.thumb')].every(i => i.complete && i.naturalWidth > 0)"
            ),
            what="the thumbnails",
        )
        assert_no_english(phone)
        phone.save_screenshot(str(shots / "10-physician-portal-es.png"))
        assert fetch_status(phone, f"/orthanc/studies/{s1['study']}") == 200
        for status, url in (
            (403, f"/orthanc/studies/{s2['study']}"),
            (403, f"/orthanc/instances/{s2['instance']}/preview"),
            (403, f"/orthanc/patients/{s1['patient']}"),
            (404, f"/portal/api/studies/{s2['study']}/series"),
        ):
            assert fetch_status(phone, url) == status, url
        phone.get(world["base"] + "/portal/studies/" + s2["study"])
        assert "no es uno de los suyos" in phone.page_source and "CONTROL" not in phone.page_source
        # The viewer of one of hers: whose it is, and an image.
        phone.get(world["base"] + "/portal/studies/" + s3["study"])
        wait_image(phone)
        assert "TORRES, PEDRO" in phone.find_element(By.ID, "viewer-patient").text
        assert_no_english(phone)
        phone.find_element(By.ID, "logout").click()
        wait(phone, lambda d: d.current_url.rstrip("/") == world["base"], what="the splash")
        assert fetch_status(phone, "/api/session") == 401
    finally:
        phone.quit()


def test_patient_shares_a_study_then_revokes_it(world, tagged, admin, shots):
    s1, s2 = tagged["S1"], tagged["S2"]
    password = admin.post(f"/api/patients/{s1['pid']}/credentials", json={}).json()["password"]
    phone = patient_phone("es")
    holder = None
    try:
        phone.get(f"{world['base']}/#id={s1['pid']}&pw={password}")
        phone.find_element(By.ID, "login-button").click()
        wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")
        assert sorted(cards(phone)) == sorted([s1["study"], s2["study"]])
        # "Share" on RODILLA's card picks it in the form; three days.
        phone.find_element(
            By.CSS_SELECTOR, f'li.study[data-study="{s1["study"]}"] button.share-study'
        ).click()
        assert (
            Select(phone.find_element(By.ID, "share-study")).first_selected_option.get_attribute(
                "value"
            )
            == s1["study"]
        )
        days = phone.find_element(By.ID, "share-days")
        assert days.get_attribute("value") == "7" and days.get_attribute("max") == "30"
        days.clear()
        days.send_keys("3")
        assert_no_english(phone)
        phone.save_screenshot(str(shots / "11-phone-share-form-es.png"))
        phone.find_element(By.ID, "share-create").click()
        result = wait(
            phone,
            lambda d: d.find_element(By.ID, "share-result").is_displayed()
            and d.find_element(By.ID, "share-result"),
            what="the new link",
        )
        link = phone.find_element(By.ID, "share-url").get_attribute("value")
        assert link.startswith(world["base"] + "/#share=") and len(link.split("#share=")[1]) >= 32
        assert "RODILLA" in result.text and "hasta el" in result.text
        qr = phone.find_element(By.ID, "share-qr")
        wait(
            phone,
            lambda d: d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", qr
            ),
            what="the QR code",
        )
        phone.execute_script("arguments[0].scrollIntoView({block: 'center'})", qr)
        assert decode_qr(qr.screenshot_as_png) == [link]
        phone.find_element(By.ID, "share-copy").click()
        wait(
            phone,
            lambda d: d.find_element(By.ID, "share-copied").text
            in ("Enlace copiado.", "Seleccione el enlace y cópielo."),
            what="the copy's result",
        )
        items = phone.find_elements(By.CSS_SELECTOR, "#share-list li.share")
        assert [i.get_attribute("data-study") for i in items] == [s1["study"]]
        assert "RODILLA" in items[0].text and "Hasta el" in items[0].text
        assert "Usado: nunca" in items[0].text
        assert_no_english(phone)
        phone.execute_script("document.getElementById('share-result').scrollIntoView()")
        phone.save_screenshot(str(shots / "12-phone-share-created-es.png"))

        # A fresh browser opens the link: logged in at once, that study only.
        holder = patient_phone("es")
        holder.get(link)
        wait(holder, lambda d: d.current_url.endswith("/portal"), what="the shared studies")
        assert cards(holder) == [s1["study"]]
        assert holder.find_element(By.TAG_NAME, "h1").text == "Estudios compartidos con usted"
        assert "MÁRQUEZ, LUCÍA" in holder.find_element(By.ID, "shared-by").text
        assert "CONTROL" not in holder.page_source and s2["study"] not in holder.page_source
        assert not holder.find_elements(By.ID, "sharing") and not holder.find_elements(
            By.CSS_SELECTOR, ".share-study"
        )
        assert "#share=" not in holder.current_url  # the secret left the address bar
        assert_no_english(holder)
        holder.save_screenshot(str(shots / "13-share-holder-es.png"))
        # The patient's list now says when the link was last used.
        phone.refresh()
        used = wait(
            phone,
            lambda d: d.find_elements(By.CSS_SELECTOR, "#share-list li.share .used"),
            what="the share's use",
        )[0].text
        assert used.startswith("Último uso: "), used
        image = f"/orthanc/instances/{s1['instance']}/preview"
        assert fetch_status(holder, image) == 200
        for status, url in (
            (403, f"/orthanc/studies/{s2['study']}"),
            (403, f"/orthanc/patients/{s1['patient']}"),
            (404, f"/portal/api/studies/{s2['study']}/series"),
        ):
            assert fetch_status(holder, url) == status, url
        holder.find_element(By.CSS_SELECTOR, "a.view").click()
        wait_image(holder)

        # The patient revokes it, after a warning.
        phone.find_element(By.CSS_SELECTOR, "#share-list li.share button.revoke").click()
        alert = wait(phone, lambda d: d.switch_to.alert, what="the warning")
        assert "¿Revocar el enlace a RODILLA" in alert.text
        alert.accept()
        revoked_at = time.monotonic()
        wait(
            phone,
            lambda d: not d.find_elements(By.CSS_SELECTOR, "#share-list li.share")
            and d.find_element(By.ID, "share-none").is_displayed(),
            what="no active links",
        )
        assert not phone.find_element(By.ID, "share-result").is_displayed()
        # The holder: the API at once, Orthanc's images within the decision cache.
        assert fetch_status(holder, "/api/session") == 401
        wait(
            holder,
            lambda d: fetch_status(d, image) == 403,
            timeout=DECISION_CACHE_SECONDS + 5,
            interval=0.25,
            what="the image refused",
        )
        assert time.monotonic() - revoked_at <= DECISION_CACHE_SECONDS + 2
        assert fetch_status(holder, f"/orthanc/studies/{s1['study']}") == 403
        holder.get(world["base"] + "/portal")
        wait(
            holder, lambda d: d.current_url.rstrip("/") == world["base"], what="back at the splash"
        )
        assert "RODILLA" not in holder.page_source
        # The link itself now says why it opens nothing.
        holder.get("about:blank")
        holder.get(link)
        wait(
            holder,
            lambda d: d.find_element(By.ID, "share-message").text
            == "Este enlace no funciona: venció, el paciente lo revocó o está incompleto. "
            "Pida uno nuevo a quien se lo envió.",
            what="the message of a revoked link",
        )
        assert not holder.find_element(By.ID, "login").is_displayed()
        assert_no_english(holder)
        holder.save_screenshot(str(shots / "14-share-link-revoked-es.png"))
    finally:
        phone.quit()
        if holder:
            holder.quit()


def test_bad_share_link_message_in_english(world):
    phone = patient_phone("en-US")
    try:
        phone.get(world["base"] + "/#share=" + "x" * 32)
        wait(
            phone,
            lambda d: d.find_element(By.ID, "share-message").text.startswith(
                "This link does not work"
            ),
            what="the message of a bad link",
        )
        phone.find_element(By.ID, "share-leave").click()  # back to the ordinary logins
        wait(
            phone,
            lambda d: d.find_element(By.ID, "login").is_displayed(),
            what="the patient's form",
        )
    finally:
        phone.quit()


def test_staff_see_rule_logins_shares_and_rules(stack, world, tagged, admin, staff, shots):
    s1, s2 = tagged["S1"], tagged["S2"]
    search = staff.find_element(By.ID, "q")
    search.send_keys(s1["pid"])
    wait(
        staff,
        lambda d: sorted(
            r.get_attribute("data-study") for r in d.find_elements(By.CSS_SELECTOR, "#rows tr")
        )
        == sorted([s1["study"], s2["study"]]),
        what="patient M's two studies",
    )

    def logins(study):
        return row(staff, study).find_element(By.CSS_SELECTOR, ".rule-logins").text

    assert tagged["login"] in logins(s1["study"]).split(", ")
    assert tagged["login"] not in logins(s2["study"])
    assert_no_english(staff)
    staff.save_screenshot(str(shots / "15-dashboard-rule-logins-es.png"))

    # A share of all of M's studies, made by the patient through the API.
    password = admin.post(f"/api/patients/{s1['pid']}/credentials", json={}).json()["password"]
    patient = Browser(world["base"])
    assert patient.login(patient_id=s1["pid"], password=password).status_code == 200
    share = patient.post("/api/shares", json={"days": 2}).json()
    holder = Browser(world["base"])
    assert holder.login(share=share["url"].split("#share=")[1]).status_code == 200
    staff.find_element(By.ID, "nav-shares").click()
    wait(staff, lambda d: d.current_url.endswith("/staff/shares"), what="the shares page")

    def share_row(d):
        return d.find_element(By.CSS_SELECTOR, f'#rows tr[data-share="{share["id"]}"]')

    text = wait(staff, share_row, what="the new share").text
    assert (
        "MÁRQUEZ, LUCÍA" in text and s1["pid"] in text and "Todos los estudios del paciente" in text
    )
    assert "Activo" in text
    assert_no_english(staff)
    staff.save_screenshot(str(shots / "16-staff-shares-es.png"))
    share_row(staff).find_element(By.CSS_SELECTOR, "button.revoke").click()
    alert = wait(staff, lambda d: d.switch_to.alert, what="the warning")
    assert "MÁRQUEZ, LUCÍA" in alert.text
    alert.accept()
    wait(
        staff,
        lambda d: not d.find_elements(By.CSS_SELECTOR, f'#rows tr[data-share="{share["id"]}"]'),
        what="the share gone from the active ones",
    )
    assert holder.get("/api/session").status_code == 401
    staff.find_element(By.ID, "show-all").click()
    text = wait(staff, share_row, what="the ended share").text
    assert "Revocado el" in text and "por admin" in text

    # The rules as applied, read-only; a broken rules file is said loud.
    staff.find_element(By.ID, "nav-rules").click()

    def rule_row(d):
        return d.find_element(By.CSS_SELECTOR, f'#rows tr[data-login="{tagged["login"]}"]')

    text = wait(staff, rule_row, what="her rule login").text
    assert "Dra. Carmen Ríos" in text and "ReferringPhysicianName (0008,0090)" in text
    assert "NameOfPhysiciansReadingStudy (0008,1060)" in text and "Puede entrar" in text
    assert rule_row(staff).find_element(By.CSS_SELECTOR, ".study-count").text == "2"
    assert not staff.find_element(By.ID, "rules-file-error").is_displayed()
    assert_no_english(staff)
    staff.save_screenshot(str(shots / "17-staff-rules-es.png"))
    path = tagged["rules_path"]
    good = path.read_text(encoding="utf-8")
    try:
        path.write_text('{"logins": [ broken', encoding="utf-8")
        staff.refresh()
        box = wait(
            staff,
            lambda d: d.find_element(By.ID, "rules-file-error").is_displayed()
            and d.find_element(By.ID, "rules-file-error"),
            what="the rules file's error",
        )
        assert "están desactivados" in box.text and "no es JSON válido en la línea 1" in box.text
        # The error is in the page itself; the rows come from GET /api/rules.
        wait(staff, lambda d: "Desactivado" in rule_row(d).text, what="the login disabled")
        staff.save_screenshot(str(shots / "18-staff-rules-error-es.png"))
        staff.find_element(By.ID, "nav-shares").click()  # every staff page says it
        wait(
            staff, lambda d: d.find_element(By.ID, "rules-error").is_displayed(), what="the banner"
        )
    finally:
        path.write_text(good, encoding="utf-8")
    staff.get(world["base"] + "/staff/rules")
    wait(staff, lambda d: "Puede entrar" in rule_row(d).text, what="the login back")


# -- the audit log page ----------------------------------------------------------


def test_admin_reads_and_filters_the_audit_log_in_spanish(world, shots):
    from tests.chromium import start

    Browser(world["base"]).login(patient_id=f"NOBODY-{uuid.uuid4().hex[:6]}", password="x" * 12)
    driver = start("es")
    try:
        staff_login(driver, world["base"])
        driver.get(world["base"] + "/staff/audit")
        wait(
            driver,
            lambda d: d.find_elements(By.CSS_SELECTOR, "#rows tr[data-event]"),
            what="audit rows",
        )
        events = {
            r.get_attribute("data-event") for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr")
        }
        assert "login" in events
        assert not driver.find_elements(By.ID, "chain-broken")  # the chain is whole
        assert driver.find_element(By.ID, "chain-whole").is_displayed()
        driver.save_screenshot(str(shots / "20-audit-es.png"))
        # The entries are shown in the page's language too.
        assert_no_english(driver)
        Select = __import__("selenium.webdriver.support.select", fromlist=["Select"]).Select
        Select(driver.find_element(By.ID, "f-event")).select_by_value("login_failed")
        driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
        wait(
            driver,
            lambda d: {
                r.get_attribute("data-event") for r in d.find_elements(By.CSS_SELECTOR, "#rows tr")
            }
            == {"login_failed"},
            what="only failed logins",
        )
        assert "event=login_failed" in driver.find_element(By.ID, "csv").get_attribute("href")
        assert "format=csv" in driver.find_element(By.ID, "csv").get_attribute("href")
    finally:
        driver.quit()
