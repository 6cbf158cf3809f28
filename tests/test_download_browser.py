"""The download says how big it is and what a ZIP is for, and the
full viewer (Orthanc's Web Viewer: English only, raw DICOM names, no way
back) is not offered to a patient or their share, only to physicians'
logins, in the page's language and saying it is in English. In a real
browser at 360x640, Spanish and English, through the real stack."""

import io
import re
import uuid
import zipfile

import pytest
from selenium.webdriver.common.by import By

from authsvc.cli import set_rule_password
from tests import chromium
from tests.chromium import wait
from tests.dicom_samples import SeriesSpec, StudySpec, send_recorded
from tests.helpers import Browser, add_rule_login
from tests.phone import log_in_as, small_phone

pytestmark = [pytest.mark.stack, pytest.mark.browser]

DOWNLOAD = {
    "es": r"Descargar \(ZIP, hasta ([\d.,]+) (KB|MB)\)",
    "en": r"Download \(ZIP, up to ([\d.,]+) (KB|MB)\)",
}
ZIP_HELP = {"es": "no para un teléfono", "en": "not for a phone"}
FULL_VIEWER = {
    "es": "Abrir en el visor completo (en inglés)",
    "en": "Open in the full viewer (in English)",
}


@pytest.fixture(scope="module")
def study(stack, orthanc, admin, tmp_path_factory):
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    suffix = uuid.uuid4().hex[:6]
    doctor = f"LARA^JUAN^{suffix.upper()}"
    spec = StudySpec(
        f"DZ-{suffix}",
        "DIAZ^ROSA",
        description="COLUMNA",
        tags={"ReferringPhysicianName": doctor},
        series=[SeriesSpec("CT", 3), SeriesSpec("MR", 2)],
    )
    written, orthanc_id, password = send_recorded(
        stack, orthanc, admin, spec, tmp_path_factory.mktemp("download")
    )
    owner = Browser(stack.public_url)
    assert owner.login(patient_id=spec.patient_id, password=password).status_code == 200
    archive = owner.get(f"/orthanc/studies/{orthanc_id}/archive", timeout=60)
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as z:
        assert len([n for n in z.namelist() if not n.endswith("/")]) == len(written.files)
    share = owner.post("/api/shares", json={"study": orthanc_id, "days": 1}).json()["url"]
    login = f"dr-lara-{suffix}"
    rules_path = add_rule_login(
        stack,
        {
            "login": login,
            "description": "Dr. Juan Lara",
            "rules": [{"tag": "ReferringPhysicianName", "value": doctor}],
        },
    )
    rule_password = set_rule_password(
        str(stack.data_dir / "rule-passwords.json"), str(rules_path), login
    )
    # Shaped for tests/phone.py's log_in_as.
    return {
        "R": {"pid": spec.patient_id, "password": password},
        "study": orthanc_id,
        "share_url": share,
        "rule": login,
        "rule_password": rule_password,
        "base": stack.public_url,
        "zip_bytes": len(archive.content),
        "file_bytes": sum(f.stat().st_size for f in written.files),
        "files": len(written.files),
    }


def shown_bytes(text, language):
    """The size a download link shows, as bytes (the upper end of its rounding)."""
    found = re.fullmatch(DOWNLOAD[language], text)
    assert found, text
    number = float(
        found[1].replace(".", "").replace(",", ".")
        if language == "es"
        else found[1].replace(",", "")
    )
    return number * (1000 if found[2] == "KB" else 1000 * 1000)


@pytest.mark.parametrize("language", ["es", "en"])
@pytest.mark.parametrize("who", ["patient", "share", "rule"])
def test_the_download_says_its_size_and_the_full_viewer_is_for_physicians(study, who, language):
    phone = small_phone(language)
    try:
        log_in_as(phone, who, study)
        card = phone.find_element(By.CSS_SELECTOR, f'li.study[data-study="{study["study"]}"]')
        on_list = card.find_element(By.CSS_SELECTOR, "a.download").text
        phone.get(f"{study['base']}/portal/studies/{study['study']}")
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"),
            what="an image",
        )
        download = phone.find_element(By.ID, "download")
        assert download.text == on_list
        # An upper bound of the ZIP really served, and not a wild one: the
        # DICOM files sent and each ZIP entry's headers.
        bound = shown_bytes(download.text, language)
        assert study["zip_bytes"] <= bound, (study["zip_bytes"], download.text)
        assert bound <= study["file_bytes"] + 400 * (study["files"] + 4) + 100 * 1000, download.text
        assert ZIP_HELP[language] in phone.find_element(By.ID, "zip-help").text
        assert "zip-help" in download.get_attribute("aria-describedby")
        full = phone.find_elements(By.ID, "webviewer")
        if who == "rule":
            assert [f.text for f in full] == [FULL_VIEWER[language]]
            wait(
                phone,
                lambda d: "/orthanc/web-viewer/app/viewer.html?series="
                in full[0].get_attribute("href"),
                what="the full viewer's link",
            )
        else:
            assert full == [], "the English-only full viewer is offered to a patient's side"
    finally:
        phone.quit()
