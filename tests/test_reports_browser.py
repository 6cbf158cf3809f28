"""The radiologist's report (an Encapsulated PDF series,
Modality DOC) in a real browser on a small phone (360x640), in Spanish and in
English. Its study's first instance is the report: the list's thumbnail must
still be an image of the study (not a broken image), the report is offered as
"Ver informe (PDF)" / "View report (PDF)" on the list and in the viewer, and
it opens as a PDF for the patient, for a share's holder and for a rule login;
another patient and nobody logged in get no PDF."""

import uuid

import pytest
from selenium.webdriver.common.by import By

from authsvc.cli import set_rule_password
from tests import chromium
from tests.chromium import image_spread, wait
from tests.dicom_samples import SeriesSpec, StudySpec, lookup, recorded, storescu, write_study
from tests.helpers import Browser, add_rule_login, wait_for
from tests.phone import log_in_as, small_phone

REPORT_TEXT = {"es": "Ver informe (PDF)", "en": "View report (PDF)"}


@pytest.fixture(scope="module")
def reports(stack, orthanc, admin, tmp_path_factory, orthanc_version):
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    suffix = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("reports-dicom")
    doctor = f"VEGA^ANA^{suffix.upper()}"
    # The report comes after the images (Orthanc then lists it first).
    spec = StudySpec(
        f"PR-{suffix}",
        "LUNA^ROSA",
        description="CRANEO",
        tags={"ReferringPhysicianName": doctor},
        series=[SeriesSpec("CT", 2), SeriesSpec("DOC", 1)],
    )
    other = StudySpec(f"PO-{suffix}", "SOL^PABLO", description="PIE", series=[SeriesSpec("CT", 1)])
    found = {}
    for key, s in (("R", spec), ("O", other)):
        written = write_study(s, tmp / key)
        result = storescu(written.files, stack.site["dicom_port"])
        assert result.returncode == 0, result.stderr
        study = lookup(orthanc, written.study_uid)
        if key == "R":
            # Orthanc 1.10 then lists the report first: the case whose thumbnail
            # broke (the first instance's preview). 1.12 lists in another order,
            # where the test still checks the thumbnail is an image's.
            listed = orthanc.get(f"{orthanc.base}/studies/{study}/instances").json()
            report_first = listed[0]["ID"] == lookup(orthanc, written.sop_uids[-1])
        found[key] = {
            "pid": s.patient_id,
            "study": study,
            "instances": [lookup(orthanc, uid) for uid in written.sop_uids],
        }
        wait_for(lambda study=study: recorded(admin, study), 30, what="study recorded")
    r = found["R"]
    r["report"], r["images"] = r["instances"][-1], r["instances"][:-1]
    if orthanc_version < (1, 12, 0):
        assert report_first, "the report is not listed first"
    for key in found:
        found[key]["password"] = admin.post(
            f"/api/patients/{found[key]['pid']}/credentials", json={}
        ).json()["password"]
    patient = Browser(stack.public_url)
    assert patient.login(patient_id=r["pid"], password=r["password"]).status_code == 200
    share = patient.post("/api/shares", json={"study": r["study"], "days": 2})
    assert share.status_code == 201, share.text
    login = f"dra-vega-{suffix}"
    rules_path = add_rule_login(
        stack,
        {
            "login": login,
            "description": "Dra. Ana Vega",
            "rules": [{"tag": "ReferringPhysicianName", "value": f"Vega^Ana^{suffix}"}],
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


def fetched(phone, url):
    """Status, content type and first bytes of a GET made by the page itself."""
    return phone.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        fetch(arguments[0], {credentials: 'same-origin'}).then(async r => {
          const b = new Uint8Array(await r.arrayBuffer());
          done([r.status, r.headers.get('content-type') || '', String.fromCharCode(...b.slice(0, 5))]);
        }).catch(e => done([-1, '', '']));""",
        url,
    )


def opens_as_pdf(phone, link):
    """The report's link leads to a PDF: the page's own GET of it answers one,
    and following it shows a PDF document."""
    url = link.get_attribute("href")
    status, kind, head = fetched(phone, url)
    assert (status, kind.split(";")[0], head) == (200, "application/pdf", "%PDF-"), (
        url,
        status,
        kind,
    )
    back = phone.current_url
    link.click()
    wait(
        phone,
        lambda d: len(d.window_handles) > 1 or d.current_url != back,
        what="the report opened",
    )
    if len(phone.window_handles) > 1:
        phone.switch_to.window(phone.window_handles[-1])
    wait(
        phone,
        lambda d: d.execute_script("return document.contentType") == "application/pdf",
        what="a PDF document",
    )
    if len(phone.window_handles) > 1:
        phone.close()
        phone.switch_to.window(phone.window_handles[0])
    else:
        phone.get(back)


@pytest.mark.stack
@pytest.mark.browser
@pytest.mark.parametrize("language", ["es", "en"])
@pytest.mark.parametrize("who", ["patient", "share", "rule"])
def test_the_report_opens_as_a_pdf(reports, who, language):
    r = reports["R"]
    report_url = f"/orthanc/instances/{r['report']}/pdf"
    phone = small_phone(language)
    try:
        log_in_as(phone, who, reports)
        assert phone.execute_script("return [innerWidth, innerHeight]") == [360, 640]
        card = phone.find_element(By.CSS_SELECTOR, f'li.study[data-study="{r["study"]}"]')
        # The thumbnail is one of the study's images, never the report.
        thumb = card.find_element(By.CSS_SELECTOR, "img.thumb")
        assert thumb.get_attribute("data-instance") in r["images"]
        wait(
            phone,
            lambda d: d.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0", thumb
            ),
            what="the thumbnail",
        )
        link = card.find_element(By.CSS_SELECTOR, "a.report")
        assert link.text == REPORT_TEXT[language]
        assert link.get_attribute("href").endswith(report_url)
        opens_as_pdf(phone, link)

        # The viewer: the images are the CT's, the report is a link to its PDF.
        phone.get(reports["base"] + f"/portal/studies/{r['study']}")
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-loaded"),
            what="an image",
        )
        assert r["report"] not in phone.find_element(By.ID, "frame").get_attribute("src")
        assert image_spread(phone, "frame") > 30
        assert not phone.find_element(By.ID, "message").text
        buttons = phone.find_elements(By.CSS_SELECTOR, "#series button")
        assert len(buttons) == 1 and "CT" in buttons[0].text
        link = wait(
            phone,
            lambda d: d.find_element(By.CSS_SELECTOR, "#reports a.report"),
            what="the report's link",
        )
        assert link.text == REPORT_TEXT[language]
        opens_as_pdf(phone, link)
    finally:
        phone.quit()


@pytest.mark.stack
@pytest.mark.browser
def test_the_report_is_nobody_elses(reports):
    r, o = reports["R"], reports["O"]
    report_url = f"/orthanc/instances/{r['report']}/pdf"
    nobody = Browser(reports["base"])
    assert nobody.get(report_url).status_code in (401, 403)
    other = Browser(reports["base"])
    assert other.login(patient_id=o["pid"], password=o["password"]).status_code == 200
    assert other.get(report_url).status_code in (403, 404)
    assert other.get(f"/orthanc/instances/{o['instances'][0]}/preview").status_code == 200
    # Neither the list nor the viewer's series of the other patient names it.
    assert r["report"] not in other.get("/portal").text
    assert other.get(f"/portal/api/studies/{r['study']}/series").status_code == 404


def test_reports_and_other_non_images_are_recorded_as_such(app):
    """In-process: ingest's kinds by SOP class, and the list's choice."""
    from authsvc import ingest
    from authsvc.models import Study
    from authsvc.portal import first_instances, report_instances
    from tests.helpers import fake_study

    assert ingest.content_kind("1.2.840.10008.5.1.4.1.1.104.1") == "pdf"
    assert ingest.content_kind("1.2.840.10008.5.1.4.1.1.88.22") == "sr"  # enhanced SR
    assert ingest.content_kind("1.2.840.10008.5.1.4.1.1.88.11") == "sr"  # basic text SR
    assert ingest.content_kind("1.2.840.10008.5.1.4.1.1.88.59") == "other"  # key object selection
    assert ingest.content_kind("1.2.840.10008.5.1.4.1.1.11.1") == "other"  # presentation state
    assert ingest.content_kind("1.2.840.10008.5.1.4.1.1.2") is None  # CT image
    assert ingest.content_kind("") is None
    data = fake_study("PK-1", "1", series=3, per_series=1)
    pdf, sr, image = (i for i, _ in data["instances"])
    data["content"] = {pdf: "pdf", sr: "other"}
    ingest.store_study(data["study_orthanc_id"], data)
    study = Study.get(Study.orthanc_id == data["study_orthanc_id"])
    assert first_instances([study]) == {study.id: image}
    assert report_instances([study]) == {study.id: [pdf]}


def test_migration_0007_records_again_the_studies_that_may_hold_reports(app):
    """A database from before migration 7 knows no instance's content: the
    studies whose modalities may be reports are queued to be read again
    (ingest then records which instances are PDFs); the others are not."""
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run_operations

    from authsvc import ingest
    from authsvc.db import database
    from authsvc.migrations import migrate
    from authsvc.models import IngestQueue, SchemaVersion
    from tests.helpers import fake_study

    with_report, images_only = fake_study("MG-1", "1"), fake_study("MG-2", "2")
    with_report["modalities"] = ["CT", "DOC"]
    for data in (with_report, images_only):
        ingest.store_study(data["study_orthanc_id"], data)
    run_operations(SchemaMigrator.from_database(database.obj).drop_column("resource", "content"))
    SchemaVersion.delete().where(SchemaVersion.version == 7).execute()
    assert migrate() == [7]
    assert [q.orthanc_id for q in IngestQueue.select()] == [with_report["study_orthanc_id"]]
    assert migrate() == []
