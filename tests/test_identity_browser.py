"""The dashboard's identity conflicts in a real browser (headless Chromium)
against the real stack: a study whose PatientID Orthanc stripped appears as a
conflict with its reason in Spanish, attached to no login; the admin makes a
separate login for it, and the study then shows with that login and its
pending password."""

import uuid

import pytest
from selenium.webdriver.common.by import By

from tests import chromium
from tests.chromium import assert_no_english, wait
from tests.dicom_samples import StudySpec, conflict_of, one_series, raw_patient_id, recorded, send
from tests.helpers import wait_for
from tests.staff_browser import staff_login

pytestmark = [pytest.mark.stack, pytest.mark.browser]


@pytest.fixture
def driver():
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    d = chromium.start("es")
    yield d
    d.quit()


def conflict_row(d, study):
    found = d.find_elements(By.CSS_SELECTOR, f'#conflict-rows tr[data-study="{study}"]')
    return found[0] if found and found[0].is_displayed() else None


def test_admin_resolves_a_conflict_on_the_dashboard(stack, orthanc, admin, tmp_path, driver):
    pid = f"BROWSER{uuid.uuid4().hex[:4].upper()}"
    mine = send(stack, orthanc, tmp_path, StudySpec(pid, "DUEÑO^REAL", series=one_series()))
    wait_for(lambda: recorded(admin, mine), 30, what="the owner's study")
    stranger = send(
        stack,
        orthanc,
        tmp_path,
        StudySpec(pid, "OTRA^PERSONA", series=one_series()),
        raw_patient_id(pid.encode() + b"\xe9", "ISO_IR 999"),
    )
    wait_for(lambda: conflict_of(admin, stranger), 30, what="the conflict")

    staff_login(driver, stack.public_url)
    tr = wait(driver, lambda d: conflict_row(d, stranger), what="the conflict's row")
    text = tr.text
    assert "juego de caracteres ISO_IR 999" in text and "desconocido" in text
    assert "OTRA, PERSONA" in text and "DUEÑO, REAL" in text and pid in text
    assert (
        driver.find_element(By.ID, "conflicts-title").text == "Conflictos de identidad por resolver"
    )
    assert_no_english(driver)
    # Not among the recorded studies, whose logins would see it.
    assert not driver.find_elements(By.CSS_SELECTOR, f'#rows tr[data-study="{stranger}"]')

    # Dismissing the question changes nothing; accepting makes the login.
    tr.find_element(By.CSS_SELECTOR, "button.separate").click()
    wait(driver, lambda d: d.switch_to.alert, what="the question").dismiss()
    assert conflict_of(admin, stranger) is not None
    tr.find_element(By.CSS_SELECTOR, "button.separate").click()
    alert = wait(driver, lambda d: d.switch_to.alert, what="the question")
    assert f"{pid}-2" in alert.text
    alert.accept()
    wait(driver, lambda d: conflict_row(d, stranger) is None, what="the conflict resolved")
    study_row = wait(
        driver,
        lambda d: d.find_element(By.CSS_SELECTOR, f'#rows tr[data-study="{stranger}"]'),
        what="the study's row",
    )
    assert f"{pid}-2" in study_row.text and "OTRA, PERSONA" in study_row.text
    assert study_row.find_elements(By.CSS_SELECTOR, ".pw"), "the new login's password to print"
    assert conflict_of(admin, stranger) is None
