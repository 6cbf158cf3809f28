"""A DICOM Structured Report shown as readable text. A study holds
a CT and a Basic Text SR (made with pydicom: a heading and two TEXT items,
the findings longer than Orthanc's 256-character JSON limit), sent with
storescu through the real stack. In a real browser at 360x640, in Spanish
and English, the patient, a share's holder and a rule login see "Ver informe
(texto)" on the list and in the viewer, and the report's tree as text;
another patient and nobody logged in do not."""

import uuid

import pytest
from selenium.webdriver.common.by import By

from authsvc.cli import set_rule_password
from tests import chromium
from tests.chromium import wait
from tests.dicom_samples import SR_FINDINGS, SeriesSpec, StudySpec, lookup, send_recorded
from tests.helpers import Browser, add_rule_login
from tests.phone import log_in_as, small_phone

pytestmark = [pytest.mark.stack, pytest.mark.browser]

LINK = {"es": "Ver informe (texto)", "en": "View report (text)"}
STATE = {"es": "Informe verificado", "en": "Verified report"}


@pytest.fixture(scope="module")
def reports(stack, orthanc, admin, tmp_path_factory):
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    suffix = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("sr-dicom")
    doctor = f"SOTO^IVAN^{suffix.upper()}"
    specs = {
        "R": StudySpec(
            f"SR-{suffix}",
            "CANO^EVA",
            description="RODILLA",
            tags={"ReferringPhysicianName": doctor},
            series=[SeriesSpec("CT", 1), SeriesSpec("SR", 1)],
        ),
        "O": StudySpec(f"SO-{suffix}", "GIL^ANA", description="MANO", series=[SeriesSpec("CT", 1)]),
    }
    found = {}
    for key, spec in specs.items():
        written, study, password = send_recorded(stack, orthanc, admin, spec, tmp / key)
        found[key] = {
            "pid": spec.patient_id,
            "study": study,
            "password": password,
            "instances": [lookup(orthanc, uid) for uid in written.sop_uids],
        }
    r = found["R"]
    r["report"], r["image"] = r["instances"][-1], r["instances"][0]
    patient = Browser(stack.public_url)
    assert patient.login(patient_id=r["pid"], password=r["password"]).status_code == 200
    share = patient.post("/api/shares", json={"study": r["study"], "days": 2})
    assert share.status_code == 201, share.text
    login = f"dr-soto-{suffix}"
    rules_path = add_rule_login(
        stack,
        {
            "login": login,
            "description": "Dr. Iván Soto",
            "rules": [{"tag": "ReferringPhysicianName", "value": doctor}],
        },
    )
    rule_password = set_rule_password(
        str(stack.data_dir / "rule-passwords.json"), str(rules_path), login
    )
    return dict(
        found,
        base=stack.public_url,
        share_url=share.json()["url"],
        rule=login,
        rule_password=rule_password,
    )


@pytest.mark.parametrize("language", ["es", "en"])
@pytest.mark.parametrize("who", ["patient", "share", "rule"])
def test_the_structured_report_reads_as_text(reports, who, language):
    r = reports["R"]
    phone = small_phone(language)
    try:
        log_in_as(phone, who, reports)
        card = phone.find_element(By.CSS_SELECTOR, f'li.study[data-study="{r["study"]}"]')
        assert (
            card.find_element(By.CSS_SELECTOR, "img.thumb").get_attribute("data-instance")
            == r["image"]
        )
        assert [a.text for a in card.find_elements(By.CSS_SELECTOR, "a.report")] == [LINK[language]]
        # The viewer: the CT is the only series; the report is a link.
        phone.get(f"{reports['base']}/portal/studies/{r['study']}")
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"),
            what="an image",
        )
        assert len(phone.find_elements(By.CSS_SELECTOR, "#series button")) == 1
        link = phone.find_element(By.CSS_SELECTOR, "#reports a.report.sr")
        assert link.text == LINK[language]
        link.click()
        report = wait(
            phone, lambda d: d.find_element(By.ID, "text-report"), what="the report's text"
        )
        assert phone.execute_script(
            "return [innerWidth, document.documentElement.scrollWidth]"
        ) == [360, 360]
        assert phone.find_element(By.TAG_NAME, "h1").text == "Informe de diagnóstico por imagen"
        assert phone.find_element(By.ID, "report-state").text == STATE[language]
        assert [h.text for h in report.find_elements(By.TAG_NAME, "h2")] == [
            "Hallazgos del estudio"
        ]
        lines = [p.text for p in report.find_elements(By.CSS_SELECTOR, "p.line")]
        assert lines == [f"{name}: {text.strip()}" for name, text in SR_FINDINGS]
    finally:
        phone.quit()


def test_the_structured_report_is_nobody_elses(reports):
    r, o = reports["R"], reports["O"]
    path = f"/portal/studies/{r['study']}/reports/{r['report']}"
    assert Browser(reports["base"]).get(path).status_code == 302  # to the login page
    other = Browser(reports["base"])
    assert other.login(patient_id=o["pid"], password=o["password"]).status_code == 200
    answer = other.get(path)
    assert answer.status_code == 404 and "Rodilla derecha" not in answer.text
    # Not the other patient's study with this one's report, nor an image as a report.
    assert other.get(f"/portal/studies/{o['study']}/reports/{r['report']}").status_code == 404
    owner = Browser(reports["base"])
    assert owner.login(patient_id=r["pid"], password=r["password"]).status_code == 200
    assert owner.get(f"/portal/studies/{r['study']}/reports/{r['image']}").status_code == 404
    assert "Rodilla derecha" in owner.get(path).text
