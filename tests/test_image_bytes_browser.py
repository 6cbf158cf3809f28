"""Images sized for a phone on a slow network, measured in
a real browser (360x640, pixel ratio 2) on a 512x512 CT slice with the
scanner's noise: a browsing slice is a JPEG at the screen's resolution (at
most 40 KB), the list's 96 px thumbnail a small JPEG (at most 8 KB), the
contrast presets are still Orthanc's renderings, "full quality" gives the
lossless image on demand, and on a slow connection the viewer fetches
ahead no further than it allows."""

import time
import uuid

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests import chromium
from tests.chromium import image_spread, wait
from tests.dicom_samples import SeriesSpec, StudySpec, lookup, send_recorded
from tests.phone import small_phone

pytestmark = [pytest.mark.stack, pytest.mark.browser]

SLICE_LIMIT = 40 * 1024
THUMB_LIMIT = 8 * 1024
SLICES = 8


@pytest.fixture(scope="module")
def noisy(stack, orthanc, admin, tmp_path_factory):
    if chromium.missing():
        pytest.fail(f"headless Chromium is needed (missing: {chromium.missing()})")
    spec = StudySpec(
        f"PN-{uuid.uuid4().hex[:6]}",
        "RUIDO^ANA",
        description="TORAX",
        series=[SeriesSpec("CT512", SLICES)],
    )
    written, study, password = send_recorded(
        stack, orthanc, admin, spec, tmp_path_factory.mktemp("noisy")
    )
    # What was measured before: the PNG the viewer asked for, through Orthanc.
    first = lookup(orthanc, written.sop_uids[0])
    png = orthanc.get(f"{orthanc.base}/instances/{first}/preview").content
    return {
        "pid": spec.patient_id,
        "password": password,
        "study": study,
        "base": stack.public_url,
        "png_bytes": len(png),
    }


def image_entries(driver):
    """[(url, bytes of the body as sent)] of every Orthanc image the page fetched."""
    return driver.execute_script("""
        return performance.getEntriesByType('resource')
          .filter(e => /\\/orthanc\\/instances\\/[^/]+\\/(preview|rendered|frames)/.test(e.name))
          .map(e => [e.name, e.encodedBodySize]);""")


def log_in(phone, noisy):
    phone.get(f"{noisy['base']}/#id={noisy['pid']}&pw={noisy['password']}")
    phone.find_element(By.ID, "login-button").click()
    wait(phone, lambda d: d.current_url.endswith("/portal"), what="the portal")


def shown(phone, index, timeout=20):
    wait(
        phone,
        lambda d: d.find_element(By.ID, "stage").get_attribute("data-index") == str(index)
        and d.execute_script(
            "const i = document.getElementById('frame');"
            "return i.complete && i.naturalWidth > 0 && "
            "document.getElementById('stage').dataset.loaded === i.dataset.source"
        ),
        what=f"slice {index + 1}",
        timeout=timeout,
    )
    assert image_spread(phone, "frame") > 30, "the image is blank"


def test_thumbnail_and_browsing_slices_are_small(noisy, capsys):
    assert noisy["png_bytes"] > 100 * 1024  # the size seen before, with this noise
    phone = small_phone("es")
    try:
        log_in(phone, noisy)
        wait(
            phone,
            lambda d: d.execute_script(
                "const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth > 0"
            ),
            what="the thumbnail",
        )
        thumbs = image_entries(phone)
        assert len(thumbs) == 1, thumbs
        assert 0 < thumbs[0][1] <= THUMB_LIMIT, thumbs

        phone.find_element(By.CSS_SELECTOR, "a.view").click()
        shown(phone, 0)
        for i in range(1, 4):
            phone.find_element(By.ID, "next").click()
            shown(phone, i)
        time.sleep(1)  # what is fetched ahead
        slices = [e for e in image_entries(phone) if "/portal" not in e[0]]
        browsing = [e for e in slices if e not in thumbs]
        assert len(browsing) >= 4, browsing
        assert all(0 < size <= SLICE_LIMIT for _, size in browsing), browsing
        # The screen is 720 device pixels wide: the 512 px slice is not enlarged.
        assert phone.execute_script("return document.getElementById('frame').naturalWidth") == 512

        # A contrast preset is still Orthanc's rendering, as small.
        Select(phone.find_element(By.ID, "preset")).select_by_value("-600,1500")
        wait(
            phone,
            lambda d: "window-center=-600"
            in (d.find_element(By.ID, "stage").get_attribute("data-loaded") or ""),
            what="the lung window",
        )
        shown(phone, 3)
        lung = [e for e in image_entries(phone) if "window-center=-600" in e[0]]
        assert lung and all(0 < size <= SLICE_LIMIT for _, size in lung), lung

        # Full quality on demand: the lossless image at its own size.
        full = phone.find_element(By.ID, "full-quality")
        assert full.get_attribute("aria-pressed") == "false" and full.text == "Calidad completa"
        before = len(image_entries(phone))
        full.click()
        assert full.get_attribute("aria-pressed") == "true"

        # Slices fetched ahead at browsing quality may still arrive after the
        # click (a busy machine): the full-quality one is the new entry
        # without a JPEG quality.
        def lossless_entries(d):
            return [e for e in image_entries(d)[before:] if "quality=" not in e[0]]

        wait(phone, lossless_entries, what="the full-quality image")
        shown(phone, 3)
        lossless = lossless_entries(phone)[0]
        assert "window-center=-600" in lossless[0]
        assert lossless[1] > max(size for _, size in lung)
        with capsys.disabled():
            print(
                f"\nbytes: PNG preview {noisy['png_bytes']}, thumbnail {thumbs[0][1]}, "
                f"browsing slices {[s for _, s in browsing]}, lung window {[s for _, s in lung]}, "
                f"full quality {lossless[1]}"
            )
    finally:
        phone.quit()


def fetched_slices(phone):
    return {e[0].split("/instances/")[1].split("/")[0] for e in image_entries(phone)}


@pytest.mark.parametrize("network, most", [("slow", 1), ("fast", None)])
def test_fetching_ahead_follows_the_connection(noisy, network, most):
    phone = small_phone("en")
    try:
        log_in(phone, noisy)
        if network == "slow":
            # Chromium's "Slow 3G": navigator.connection then says "2g"/"3g".
            phone.execute_cdp_cmd("Network.enable", {})
            phone.execute_cdp_cmd(
                "Network.emulateNetworkConditions",
                {
                    "offline": False,
                    "latency": 400,
                    "downloadThroughput": 50 * 1024,
                    "uploadThroughput": 50 * 1024,
                    "connectionType": "cellular3g",
                },
            )
        phone.get(f"{noisy['base']}/portal/studies/{noisy['study']}")
        # At 50 KB/s and 400 ms a round trip, the page, its script and the
        # first slice take ~5 s; on a busy CI machine (Orthanc 1.12's run
        # beside other jobs) 20 s was once not enough.
        shown(phone, 0, timeout=60 if network == "slow" else 20)
        # The viewer says how many slices it fetched ahead once done.
        wait(
            phone,
            lambda d: d.find_element(By.ID, "stage").get_attribute("data-ahead"),
            timeout=30,
            what="fetching ahead",
        )
        ahead = len(fetched_slices(phone)) - 1
        kind = phone.execute_script(
            "return navigator.connection && navigator.connection.effectiveType"
        )
        if most is not None:
            assert kind in ("slow-2g", "2g", "3g"), kind
            assert ahead <= most, (kind, ahead)
        else:
            assert ahead >= 2, (kind, ahead)
    finally:
        phone.quit()
