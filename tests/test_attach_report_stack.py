"""Staff attach a report PDF to a study from the dashboard. Through
the real stack (nginx, the service, Debian's Orthanc): the service wraps the
PDF as an Encapsulated PDF instance of that study (same StudyInstanceUID and
patient tags, a new series), Orthanc stores it under the same study, it is
audited, and the patient, a share and a rule login then get "Ver informe
(PDF)" and the very PDF, while another patient does not. Refused: no staff
session, a file that is not a PDF, one over the size limit, an unknown study.
The dashboard's button, in a real browser, uploads a PDF chosen from disk."""

import base64
import uuid

import pydicom
import pytest
from selenium.webdriver.common.by import By

from authsvc.attach import REPORT_MAX_BYTES
from authsvc.cli import set_rule_password
from tests import chromium
from tests.chromium import wait
from tests.dicom_samples import SeriesSpec, StudySpec, minimal_pdf, recorded, send_recorded
from tests.helpers import ADMIN_PASSWORD, Browser, add_rule_login, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def world(stack, orthanc, admin, tmp_path_factory):
    suffix = uuid.uuid4().hex[:6]
    doctor = f"RUIZ^MARTA^{suffix.upper()}"
    tmp = tmp_path_factory.mktemp("attach")
    found = {}
    for key, spec in {
        "A": StudySpec(
            f"AT-{suffix}",
            "PÉREZ^ÁNGEL",
            description="TOBILLO",
            tags={"ReferringPhysicianName": doctor},
            series=[SeriesSpec("CT", 2)],
        ),
        "B": StudySpec(f"BT-{suffix}", "LEÓN^SARA", series=[SeriesSpec("CT", 1)]),
    }.items():
        written, study, password = send_recorded(stack, orthanc, admin, spec, tmp / key)
        who = Browser(stack.public_url)
        assert who.login(patient_id=spec.patient_id, password=password).status_code == 200
        found[key] = {
            "pid": spec.patient_id,
            "study": study,
            "uid": written.study_uid,
            "browser": who,
            "source": pydicom.dcmread(written.files[0]),
        }
    share = (
        found["A"]["browser"]
        .post("/api/shares", json={"study": found["A"]["study"], "days": 1})
        .json()
    )
    holder = Browser(stack.public_url)
    assert holder.login(share=share["url"].split("#share=")[1]).status_code == 200
    login = f"dra-ruiz-{suffix}"
    rules_path = add_rule_login(
        stack,
        {
            "login": login,
            "description": "Dra. Marta Ruiz",
            "rules": [{"tag": "ReferringPhysicianName", "value": doctor}],
        },
    )
    password = set_rule_password(
        str(stack.data_dir / "rule-passwords.json"), str(rules_path), login
    )
    physician = Browser(stack.public_url)
    wait_for(
        lambda: physician.login(login=login, password=password).status_code == 200,
        30,
        what="rule login",
    )
    return dict(found, holder=holder, physician=physician, base=stack.public_url)


def upload(who, study, pdf, **extra):
    return who.post(
        f"/staff/api/studies/{study}/report",
        json={"pdf": base64.b64encode(pdf).decode(), **extra},
        timeout=30,
    )


def reports_on_list(who, study):
    """The PDF links of `study`'s card on the login's list."""
    import re

    page = who.get("/portal").text
    card = (
        page.split(f'data-study="{study}"')[1].split("</li>")[0]
        if f'data-study="{study}"' in page
        else ""
    )
    return re.findall(r'href="/orthanc/instances/([0-9a-f-]{44})/pdf"', card)


def test_staff_attach_a_report_that_every_authorised_login_then_opens(world, admin, orthanc):
    a, b = world["A"], world["B"]
    pdf = minimal_pdf(f"Informe de {a['pid']}")
    assert reports_on_list(a["browser"], a["study"]) == []
    answer = upload(admin, a["study"], pdf, title="Informe radiológico")
    assert answer.status_code == 201, answer.text
    instance = answer.json()["instance"]
    # In Orthanc: an instance of the same study, in a new series, with the
    # patient's and the study's own tags, holding the very PDF.
    info = orthanc.get(f"{orthanc.base}/instances/{instance}").json()
    series = orthanc.get(f"{orthanc.base}/series/{info['ParentSeries']}").json()
    assert series["ParentStudy"] == a["study"] and series["MainDicomTags"]["Modality"] == "DOC"
    assert info["ParentSeries"] not in [
        s["ParentSeries"]
        for s in orthanc.get(f"{orthanc.base}/studies/{a['study']}/instances").json()
        if s["ID"] != instance
    ]
    tags = orthanc.get(f"{orthanc.base}/instances/{instance}/simplified-tags").json()
    source = a["source"]
    assert tags["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1"
    assert tags["StudyInstanceUID"] == a["uid"] and tags["PatientID"] == a["pid"]
    assert (
        tags["PatientName"] == "PÉREZ^ÁNGEL" and tags["PatientBirthDate"] == source.PatientBirthDate
    )
    assert tags["DocumentTitle"] == "Informe radiológico"
    assert orthanc.get(f"{orthanc.base}/instances/{instance}/pdf").content.rstrip(b"\0") == pdf
    # Recorded again: every login that sees the study lists it and gets the PDF.
    for who in (a["browser"], world["holder"], world["physician"]):
        wait_for(
            lambda who=who: reports_on_list(who, a["study"]) == [instance],
            30,
            what="the report listed",
        )
        got = who.get(f"/orthanc/instances/{instance}/pdf")
        assert got.status_code == 200 and got.content.rstrip(b"\0") == pdf
    assert b["browser"].get(f"/orthanc/instances/{instance}/pdf").status_code in (403, 404)
    assert instance not in b["browser"].get("/portal").text
    # Not held back as an identity conflict: the study stays the patient's.
    assert recorded(admin, a["study"])
    # Audited, with who, which study and instance.
    events = admin.get("/api/audit", params={"event": "report_attached"}).json()["events"]
    mine = [e for e in events if e["subject"] == a["study"]]
    assert mine and mine[0]["actor"] == "staff admin" and instance in mine[0]["detail"]
    assert admin.get("/api/audit").json()["chain_ok"]


def test_what_is_refused(world, admin):
    a = world["A"]
    pdf = minimal_pdf("x")
    for who in (Browser(world["base"]), a["browser"], world["physician"], world["holder"]):
        assert upload(who, a["study"], pdf).status_code in (401, 403)
    assert upload(admin, a["study"], b"GIF89a" + pdf[6:]).status_code == 400  # not a PDF
    assert upload(admin, a["study"], pdf[:-20]).status_code == 400  # no end of PDF
    bad = admin.post(f"/staff/api/studies/{a['study']}/report", json={"pdf": "%%% not base64"})
    assert bad.status_code == 400
    big = pdf[:-6] + b" " * (REPORT_MAX_BYTES + 1 - len(pdf)) + pdf[-6:]
    assert len(big) == REPORT_MAX_BYTES + 1
    assert upload(admin, a["study"], big).status_code == 413
    unknown = "0" * 8 + "-00000000" * 4
    assert upload(admin, unknown, pdf).status_code == 404


@pytest.mark.browser
def test_the_dashboard_attaches_a_pdf_chosen_from_disk(world, admin, tmp_path):
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    b = world["B"]
    path = tmp_path / "informe.pdf"
    pdf = minimal_pdf("Informe desde el panel")
    path.write_bytes(pdf)
    driver = chromium.start("es")
    try:
        driver.get(world["base"] + "/staff/login")
        driver.find_element(By.ID, "username").send_keys("admin")
        driver.find_element(By.ID, "password").send_keys(ADMIN_PASSWORD)
        driver.find_element(By.ID, "login-button").click()
        button = wait(
            driver,
            lambda d: d.find_element(
                By.CSS_SELECTOR, f'tr[data-study="{b["study"]}"] button.attach-report'
            ),
            what="the row's button",
        )
        assert button.text.startswith("Añadir PDF")
        button.click()
        driver.find_element(By.ID, "report-file").send_keys(str(path))
        wait(
            driver,
            lambda d: "Informe adjuntado" in d.find_element(By.ID, "status").text,
            timeout=30,
            what="the report attached",
        )
        wait_for(
            lambda: len(reports_on_list(b["browser"], b["study"])) == 1,
            30,
            what="the patient's link",
        )
        got = b["browser"].get(
            f"/orthanc/instances/{reports_on_list(b['browser'], b['study'])[0]}/pdf"
        )
        assert got.content.rstrip(b"\0") == pdf
    finally:
        driver.quit()
