"""The radiology desk, in Debian's headless Chromium against the real
stack (Orthanc, storescu, nginx): the dashboard keeps one line per study at
1366x768 (>= 8 studies on the first screen, each row's actions in one row)
and every action reachable at 800x1280 (a tablet: nothing off the screen,
nothing covered); its filters; a printed slip offers an explicit reprint
(a new password), not "Print slip" as if new. A batch of 3 pending slips
prints as 3 pages (Chromium's printToPDF over CDP, read with pypdf), each
with its studies, and confirming it marks all 3 printed; the block for the
report is a PNG whose QR code holds the slip's link."""

import base64
import io
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests import chromium
from tests.chromium import decode_qr, wait
from tests.dicom_samples import SeriesSpec, StudySpec, lookup, recorded, storescu, write_study
from tests.helpers import wait_for
from tests.staff_browser import DESKTOP, TABLET, log_in_staff, open_browser

pytestmark = pytest.mark.stack

STUDIES = 10


@pytest.fixture(scope="module")
def desk(stack, orthanc, admin, tmp_path_factory):
    """Ten patients with one study each, sent with storescu (CT and MR in
    turn), all with a new password whose slip is not printed yet."""
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    suffix = uuid.uuid4().hex[:6]
    tmp = tmp_path_factory.mktemp("desk")
    files, studies = [], []
    for n in range(STUDIES):
        modality = "CT" if n % 2 == 0 else "MR"
        spec = StudySpec(
            f"PD-{suffix}-{n}",
            f"MESA^PACIENTE {n}",
            description=f"ESTUDIO {n} {modality}",
            series=[SeriesSpec(modality, 1)],
        )
        written = write_study(spec, tmp / str(n))
        files += written.files
        studies.append(
            {
                "pid": spec.patient_id,
                "uid": written.study_uid,
                "modality": modality,
                "description": spec.description,
            }
        )
    result = storescu(files, stack.site["dicom_port"])
    assert result.returncode == 0, result.stderr
    for s in studies:
        s["study"] = lookup(orthanc, s["uid"])
        wait_for(lambda s=s: recorded(admin, s["study"]), 60, what="study recorded")
    return {"base": stack.public_url, "studies": studies, "suffix": suffix}


def wait_rows(driver, desk):
    ours = {s["study"] for s in desk["studies"]}
    wait(
        driver,
        lambda d: ours
        <= {r.get_attribute("data-study") for r in d.find_elements(By.CSS_SELECTOR, "#rows tr")},
        what="our studies on the dashboard",
    )


ROWS_ON_SCREEN = """
const h = innerHeight;
return [...document.querySelectorAll('#rows tr')].map(tr => {
  const r = tr.getBoundingClientRect();
  const actions = [...tr.querySelectorAll('.row-actions > *')].map(e => e.getBoundingClientRect().top);
  const lines = [...tr.querySelectorAll('td')].map(td => td.scrollHeight > td.clientHeight + 1 ||
    td.getClientRects().length > 1);
  // Cut with an ellipsis is fine for a name (its tooltip has it all), never
  // for the password or an action.
  const cut = [...tr.querySelectorAll('.pw, td.actions-cell')].filter(e => e.scrollWidth > e.clientWidth + 1);
  return {top: r.top, cut: cut.map(e => e.className + ' ' + e.scrollWidth + '>' + e.clientWidth), bottom: r.bottom, height: r.height, visible: r.top >= 0 && r.bottom <= h,
          actionTops: actions, overflowing: lines.some(Boolean)};
});"""


@pytest.mark.browser
@pytest.mark.parametrize("language", ["es", "en"])
def test_one_line_per_study_at_1366(desk, language, tmp_path):
    driver = open_browser(DESKTOP, language)
    try:
        log_in_staff(driver, desk["base"])
        wait_rows(driver, desk)
        assert driver.execute_script("return [innerWidth, innerHeight]") == list(DESKTOP)
        driver.save_screenshot(str(tmp_path / f"desk-1366-{language}.png"))
        rows = driver.execute_script(ROWS_ON_SCREEN)
        visible = [r for r in rows if r["visible"]]
        heights = sorted(round(r["height"]) for r in rows)
        assert len(visible) >= 8, (
            f"{len(visible)} studies on the first screen; row heights {heights}"
        )
        for r in rows:
            # One line: no cell wraps, and the actions share one row.
            assert r["height"] <= 48, heights
            assert max(r["actionTops"]) - min(r["actionTops"]) <= 2, r
            assert not r["cut"], r
        assert driver.execute_script("return document.documentElement.scrollWidth") <= DESKTOP[0]
    finally:
        driver.quit()


REACHABLE = """
const out = [];
for (const tr of document.querySelectorAll('#rows tr')) {
  for (const e of tr.querySelectorAll('.row-actions > *, .pw')) {
    e.scrollIntoView({block: 'center', inline: 'nearest'});
    const r = e.getBoundingClientRect();
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    const ok = r.width > 0 && r.left >= 0 && r.right <= innerWidth && hit !== null &&
               (hit === e || e.contains(hit));
    if (!ok) out.push({row: tr.dataset.study, what: e.className || e.tagName,
                       left: r.left, right: r.right, hit: hit && hit.tagName});
  }
}
return out;"""


@pytest.mark.browser
@pytest.mark.parametrize("language", ["es", "en"])
def test_every_action_reachable_at_800(desk, language, tmp_path):
    driver = open_browser(TABLET, language)
    try:
        log_in_staff(driver, desk["base"])
        wait_rows(driver, desk)
        assert driver.execute_script("return innerWidth") == TABLET[0]
        assert driver.execute_script("return document.documentElement.scrollWidth") <= TABLET[0]
        count = driver.execute_script(
            "return document.querySelectorAll('#rows .row-actions > *').length"
        )
        assert count >= 4 * STUDIES  # language, print, reissue, view on each of ours
        driver.save_screenshot(str(tmp_path / f"desk-800-{language}.png"))
        unreachable = driver.execute_script(REACHABLE)
        assert not unreachable, unreachable[:5]
    finally:
        driver.quit()


def row_ids(driver):
    return [
        r.get_attribute("data-study") for r in driver.find_elements(By.CSS_SELECTOR, "#rows tr")
    ]


def in_row(driver, study, css, what="text"):
    """An element of a study's row, read in one go: the dashboard redraws its
    rows when the data changes, and an element found earlier may be gone."""

    def read(d):
        e = d.find_element(By.CSS_SELECTOR, f'#rows tr[data-study="{study}"] {css}'.strip())
        return e.text if what == "text" else (e.click() or True)

    return wait(driver, read, what=f"{css} of {study}")


@pytest.mark.browser
def test_filters_and_the_reprint_path(desk, stack):
    driver = open_browser(DESKTOP, "es")
    try:
        log_in_staff(driver, desk["base"])
        wait_rows(driver, desk)
        mr = {s["study"] for s in desk["studies"] if s["modality"] == "MR"}
        ct = {s["study"] for s in desk["studies"] if s["modality"] == "CT"}
        # Modality: the choices are the codes of the studies there are.
        modality = Select(driver.find_element(By.ID, "f-modality"))
        wait(
            driver,
            lambda d: {"CT", "MR"} <= {o.get_attribute("value") for o in modality.options},
            what="the modality choices",
        )
        modality.select_by_value("MR")
        wait(driver, lambda d: mr <= set(row_ids(d)) and not ct & set(row_ids(d)), what="MR only")
        modality.select_by_value("")
        wait(driver, lambda d: ct <= set(row_ids(d)), what="all modalities again")
        # Today: every study of ours arrived today (the site's day).
        driver.find_element(By.ID, "f-today").click()
        wait(driver, lambda d: (mr | ct) <= set(row_ids(d)), what="today's studies")
        driver.find_element(By.ID, "f-today").click()
        # Print one slip, confirm it printed: the row then offers a reprint
        # with a new password, and only that.
        first = desk["studies"][0]
        assert in_row(driver, first["study"], "a.print").startswith("Imprimir hoja")
        dashboard = driver.current_window_handle
        in_row(driver, first["study"], "a.print", "click")
        wait(driver, lambda d: len(d.window_handles) == 2, what="the slip's tab")
        driver.switch_to.window([h for h in driver.window_handles if h != dashboard][0])
        wait(
            driver,
            lambda d: d.find_element(By.ID, "confirm").is_displayed(),
            what="the print question",
        )
        driver.find_element(By.ID, "printed").click()
        wait(driver, lambda d: d.find_element(By.ID, "done").is_displayed(), what="done")
        driver.close()
        driver.switch_to.window(dashboard)
        # Pending only: the printed one leaves the list.
        driver.find_element(By.ID, "f-pending").click()
        wait(
            driver,
            lambda d: first["study"] not in row_ids(d)
            and {s["study"] for s in desk["studies"][1:]} <= set(row_ids(d)),
            what="pending slips only",
        )
        driver.find_element(By.ID, "f-pending").click()
        assert in_row(driver, first["study"], "button.reprint").startswith(
            "Reimprimir (contraseña nueva)"
        )
        assert "Impresa el" in in_row(driver, first["study"], "")
        assert not driver.find_elements(
            By.CSS_SELECTOR, f'#rows tr[data-study="{first["study"]}"] a.print'
        )
        in_row(driver, first["study"], "button.reprint", "click")
        alert = wait(driver, lambda d: d.switch_to.alert, what="the reprint warning")
        assert "contraseña nueva" in alert.text
        alert.accept()
        # A new password, and its slip printing at once.
        wait(
            driver,
            lambda d: "/staff/slips/" in d.current_url and d.find_elements(By.ID, "slip"),
            what="the new slip",
        )
        wait(
            driver,
            lambda d: d.find_element(By.ID, "confirm").is_displayed(),
            what="the print question",
        )
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def batch(stack, orthanc, admin, tmp_path_factory):
    """Three new patients (the first with two studies), their slips pending."""
    tag = "LOTE" + uuid.uuid4().hex[:6].upper()
    tmp = tmp_path_factory.mktemp("batch")
    files, patients = [], []
    for n, studies in enumerate(
        [[("CT", "TORAX"), ("MR", "RODILLA")], [("MR", "CRANEO")], [("CT", "ABDOMEN")]]
    ):
        pid = f"{tag}-{n}"
        for k, (modality, description) in enumerate(studies):
            spec = StudySpec(
                pid,
                f"LOTE^PACIENTE {n}",
                description=f"{description} {tag}",
                study_date=f"2026112{k + 1}",
                series=[SeriesSpec(modality, 1)],
            )
            written = write_study(spec, tmp / f"{n}-{k}")
            files += written.files
            patients.append((pid, written.study_uid, modality, spec.description))
    result = storescu(files, stack.site["dicom_port"])
    assert result.returncode == 0, result.stderr
    for _pid, uid, _, _ in patients:
        study = lookup(orthanc, uid)
        wait_for(lambda study=study: recorded(admin, study), 60, what="study recorded")
    return {"tag": tag, "studies": patients, "base": stack.public_url}


@pytest.mark.browser
def test_a_batch_of_three_pending_slips(batch, admin):
    from pypdf import PdfReader

    driver = open_browser(DESKTOP, "es")
    try:
        log_in_staff(driver, batch["base"])
        # The dashboard's filters choose the batch: here a search for the three.
        driver.find_element(By.ID, "q").send_keys(batch["tag"])
        wait(
            driver,
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#rows tr")) == 4,
            what="the 4 studies",
        )
        href = wait(
            driver,
            lambda d: (lambda h: batch["tag"] in h and h)(
                d.find_element(By.ID, "batch-print").get_attribute("href")
            ),
            what="the batch link",
        )
        driver.get(href.replace("print=1", "print=0"))
        assert driver.find_element(By.TAG_NAME, "h1").text == "Hojas pendientes: 3"
        pdf = driver.execute_cdp_cmd(
            "Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True}
        )
        reader = PdfReader(io.BytesIO(base64.b64decode(pdf["data"])))
        pages = [page.extract_text() for page in reader.pages]
        assert len(pages) == 3, [p[:80] for p in pages]
        pids = sorted({s[0] for s in batch["studies"]})
        on_pages = [[pid for pid in pids if pid in text] for text in pages]
        assert sorted(sum(on_pages, [])) == pids and all(len(p) == 1 for p in on_pages), on_pages
        for n, text in enumerate(pages):
            pid = on_pages[n][0]
            ours = [s for s in batch["studies"] if s[0] == pid]
            for _, _, modality, description in ours:
                assert description in text and modality in text, (n, description, text)
            assert "nov 2026" in text and "Impresa el" in text and "¿Perdió su hoja?" in text, text
            # No other patient's study on this slip.
            assert not [s for s in batch["studies"] if s[0] != pid and s[3] in text]
            box = reader.pages[n].mediabox
            assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (
                105,
                148,
            )
        # Printed as one job: confirming marks all three printed.
        driver.execute_script("document.getElementById('print').click()")
        wait(
            driver,
            lambda d: d.find_element(By.ID, "confirm").is_displayed(),
            what="the print question",
        )
        driver.find_element(By.ID, "printed").click()
        wait(driver, lambda d: d.find_element(By.ID, "done").is_displayed(), what="done")
        assert not driver.find_elements(By.CSS_SELECTOR, ".slip")
        rows = admin.get("/staff/api/studies", params={"q": batch["tag"]}).json()["studies"]
        assert len(rows) == 4 and {r["login"] for r in rows} == {"printed"}, rows
        driver.get(href)
        assert driver.find_element(By.ID, "none")
    finally:
        driver.quit()


def test_the_block_for_the_report(batch, admin):
    """A PNG: its QR code is the slip's link; only while the password is kept."""
    pid = batch["studies"][0][0]
    assert admin.post(f"/staff/api/patients/{pid}/reissue", json={}).status_code == 200
    row = next(r for r in admin.get("/staff/api/studies", params={"q": pid}).json()["studies"])
    password = "-".join(row["password"])
    r = admin.get("/staff/report-block", params={"patient": pid})
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/png"
    assert "no-store" in r.headers["Cache-Control"]
    assert decode_qr(r.content) == [f"{batch['base']}/#id={pid}&pw={password}"]
    slip = admin.get(f"/staff/slips/{pid}").text
    assert "/staff/report-block?patient=" in slip
    assert (
        admin.post(
            f"/staff/api/patients/{pid}/printed", json={"password_set_at": row["password_set_at"]}
        ).status_code
        == 200
    )
    assert admin.get("/staff/report-block", params={"patient": pid}).status_code == 409
