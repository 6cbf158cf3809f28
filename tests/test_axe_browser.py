"""axe-core (the npm registry's, pinned in the Makefile, installed by
`make test-deps` into .cache/axe) reports no violation on any staff page, in
Debian's headless Chromium against the real stack, at 1366x768 and 800x1280,
in Spanish and English. Among its rules, label-content-name-mismatch: a
button's spoken name contains its visible text (voice control)."""

import re
import uuid
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests.chromium import wait
from tests.dicom_samples import SeriesSpec, StudySpec, lookup, recorded, storescu, write_study
from tests.helpers import Browser, wait_for
from tests.staff_browser import DESKTOP, TABLET, log_in_staff, open_browser

pytestmark = [pytest.mark.stack, pytest.mark.browser]

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / ".cache" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
AXE_VERSION = re.search(r"^AXE_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1]
# axe's rules on by default (WCAG and best practices), and the experimental
# label-content-name-mismatch (voice control users rely on it).
RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {rules: {'label-content-name-mismatch': {enabled: true}}}).then(r => done({
  version: axe.version, passed: r.passes.map(p => p.id),
  violations: r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 3).map(n => n.target.join(' ') + ' :: ' + n.failureSummary)}))
})).catch(e => done({error: String(e)}));"""


@pytest.fixture(scope="module")
def axe_source():
    if not AXE.exists():
        pytest.fail(f"axe-core is needed: run `make test-deps` (missing {AXE})")
    return AXE.read_text()


@pytest.fixture(scope="module")
def pages(stack, orthanc, admin, tmp_path_factory):
    """A patient with a pending slip, a printed one and a share: every staff
    page has rows to show."""
    tag = "AXE" + uuid.uuid4().hex[:6].upper()
    tmp = tmp_path_factory.mktemp("axe")
    studies = []
    for n in range(2):
        spec = StudySpec(f"{tag}-{n}", f"ACCESIBLE^PACIENTE {n}", series=[SeriesSpec("CT", 1)])
        written = write_study(spec, tmp / str(n))
        assert storescu(written.files, stack.site["dicom_port"]).returncode == 0
        studies.append(lookup(orthanc, written.study_uid))
    for study in studies:
        wait_for(lambda study=study: recorded(admin, study), 60, what="study recorded")
    # A share made by patient 0 (the shares page then has a row to revoke).
    pending = admin.get("/staff/api/studies", params={"q": f"{tag}-0"}).json()["studies"][0]
    owner = Browser(stack.public_url)
    assert (
        owner.login(patient_id=f"{tag}-0", password="-".join(pending["password"])).status_code
        == 200
    )
    assert owner.post("/api/shares", json={"study": studies[0], "days": 1}).status_code in (
        200,
        201,
    )
    row = admin.get("/staff/api/studies", params={"q": f"{tag}-1"}).json()["studies"][0]
    assert (
        admin.post(
            f"/staff/api/patients/{tag}-1/printed", json={"password_set_at": row["password_set_at"]}
        ).status_code
        == 200
    )
    return [
        "/staff",
        "/staff/shares",
        "/staff/rules",
        "/staff/users",
        "/staff/audit",
        f"/staff/slips/{tag}-0?study={studies[0]}",
        f"/staff/slips/{tag}-1",
        f"/staff/batch-slips?q={tag}",
    ]


@pytest.mark.parametrize("size", [DESKTOP, TABLET], ids=["1366x768", "800x1280"])
@pytest.mark.parametrize("language", ["es", "en"])
def test_no_axe_violation_on_any_staff_page(stack, pages, axe_source, size, language):
    driver = open_browser(size, language)
    found = {}
    try:
        log_in_staff(driver, stack.public_url)
        for path in pages:
            driver.get(stack.public_url + path)
            if path == "/staff":
                wait(
                    driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#rows tr"), what="the rows"
                )
            driver.execute_script(axe_source)
            result = driver.execute_async_script(RUN)
            assert "error" not in result, result
            assert result["version"] == AXE_VERSION
            assert result["passed"], path  # it did check the page
            if result["violations"]:
                found[path] = result["violations"]
    finally:
        driver.quit()
    assert not found, found
