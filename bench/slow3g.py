"""The patient's phone on a slow network: Debian's Chromium as a
390x844 phone with the Slow 3G profile (CDP Network.emulateNetworkConditions:
400 kbit/s each way, 400 ms round trip), through the real stack (nginx, the
service, Orthanc), on a 300-slice 512x512 CT synthesised from pydicom's CT
with a real scanner's noise (tests/dicom_samples.ct_512: a plain upscale
compresses unrealistically well).

Measured, on the portal's JPEG path: QR link -> list, the list's thumbnail,
list -> first image, the next slice, a slice not fetched yet (the slider to
the middle), bytes per browsing slice and per thumbnail. Beside them, in the
same run and the same throttled page, the PNG path the viewer used before
(Orthanc's /preview for slices and thumbnails): each PNG fetched cold by
the page, its time put in place of the JPEG's inside the same steps. Ratios
PNG / JPEG are printed side by side, with the targets (first image <= 5 s,
<= 40 KB per browsing slice, <= 8 KB per thumbnail).

    python -m bench.slow3g [--slices 300] [--json bench/results/slow3g.json]

A measurement, not a test: it exits non-zero only when it could not run.
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

SLOW_3G = {
    "offline": False,
    "latency": 400,
    "downloadThroughput": 400 * 1000 / 8,
    "uploadThroughput": 400 * 1000 / 8,
    "connectionType": "cellular3g",
}
TARGETS = {"first_image_s": 5.0, "slice_kb": 40.0, "thumbnail_kb": 8.0}
ADMIN_PASSWORD = "bench-admin-Passw0rd-long-enough"


def prepare(tmp, slices):
    """The stack with the CT stored and recorded, and its patient's login."""
    from deploy.trial import Stack
    from tests.dicom_samples import SeriesSpec, StudySpec, lookup, recorded, storescu, write_study
    from tests.helpers import Browser, free_port, wait_for

    ports = {
        k: free_port() for k in ("http_port", "orthanc_http_port", "dicom_port", "service_port")
    }
    stack = Stack(
        tmp / "stack",
        dict(ports, stable_age_seconds=2),
        env={"AUTHSVC_ADMIN_PASSWORD": ADMIN_PASSWORD},
    )
    stack.start()
    spec = StudySpec(
        "SLOW-3G", "TELEFONO^LENTO", description="TORAX", series=[SeriesSpec("CT512", slices)]
    )
    started = time.monotonic()
    written = write_study(spec, tmp / "dicom")
    result = storescu(written.files, stack.site["dicom_port"])
    if result.returncode:
        raise RuntimeError(f"storescu failed: {result.stderr[-500:]}")
    print(f"{slices} slices written and stored in {time.monotonic() - started:.0f} s", flush=True)
    admin = Browser(stack.public_url)
    assert admin.login(username="admin", password=ADMIN_PASSWORD).status_code == 200
    import requests

    orthanc = requests.Session()
    orthanc.auth = ("authsvc", stack.secrets["orthanc_password"])
    orthanc.base = stack.orthanc_url
    study = lookup(orthanc, written.study_uid)
    wait_for(lambda: recorded(admin, study), 120, what="the study recorded")
    password = admin.post(f"/api/patients/{spec.patient_id}/credentials", json={}).json()[
        "password"
    ]
    patient = Browser(stack.public_url)
    assert patient.login(patient_id=spec.patient_id, password=password).status_code == 200
    series = patient.get(f"/portal/api/studies/{study}/series", timeout=30).json()["series"]
    return stack, {
        "base": stack.public_url,
        "study": study,
        "pid": spec.patient_id,
        "password": password,
        "instances": series[0]["instances"],
    }


def _wait(driver, predicate, timeout=120, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate(driver)
            if value:
                return value
        except Exception:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"timed out waiting for {what}")


def _rendered(driver):
    """(URL, bytes, ms) of every /rendered fetch of the page so far."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/rendered'))"
        ".map(e => [e.name, e.encodedBodySize, e.duration])"
    )


def _png(driver, instance):
    """A PNG preview fetched cold by the page itself: [bytes, ms]."""
    return driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1], t = performance.now();
        fetch('/orthanc/instances/' + arguments[0] + '/preview?bench=' + Math.random(),
              {credentials: 'same-origin'})
          .then(r => r.arrayBuffer()).then(b => done([b.byteLength, performance.now() - t]))
          .catch(() => done([-1, 0]));""",
        instance,
    )


def measure(world):
    from selenium.webdriver.common.by import By

    from tests import chromium

    driver = chromium.start("es", phone=True)
    driver.set_script_timeout(120)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", SLOW_3G)
        qr = f"{world['base']}/#id={world['pid']}&pw={world['password']}"
        out = {}
        started = time.monotonic()
        driver.get(qr)
        driver.find_element(By.ID, "login-button").click()
        _wait(
            driver,
            lambda d: d.current_url.endswith("/portal")
            and d.execute_script("return document.readyState") == "complete",
            what="the list",
        )
        out["qr_to_list_s"] = time.monotonic() - started
        out["viewport"] = driver.execute_script("return [innerWidth, innerHeight]")
        _wait(
            driver,
            lambda d: d.execute_script(
                "const i = document.querySelector('img.thumb'); return i && i.complete && i.naturalWidth > 0"
            ),
            what="the thumbnail",
        )
        out["qr_to_thumbnail_s"] = time.monotonic() - started
        thumbs = _rendered(driver)
        out["thumbnail_kb"] = statistics.median(b for _, b, _ in thumbs) / 1000
        thumb_ms = statistics.median(ms for _, _, ms in thumbs)
        png_thumb = _png(driver, world["instances"][0])
        out["png_thumbnail_kb"] = png_thumb[0] / 1000
        out["png_qr_to_thumbnail_s"] = out["qr_to_thumbnail_s"] + (png_thumb[1] - thumb_ms) / 1000

        started = time.monotonic()
        driver.find_element(By.CSS_SELECTOR, "a.view").click()
        stage = lambda d: d.find_element(By.ID, "stage")  # noqa: E731
        first = _wait(
            driver, lambda d: stage(d).get_attribute("data-loaded"), what="the first image"
        )
        out["list_to_first_image_s"] = time.monotonic() - started
        started = time.monotonic()
        driver.find_element(By.ID, "next").click()
        _wait(
            driver,
            lambda d: stage(d).get_attribute("data-index") == "1"
            and stage(d).get_attribute("data-loaded") not in (None, "", first),
            what="the next slice",
        )
        out["next_slice_s"] = time.monotonic() - started
        middle = len(world["instances"]) // 2
        before = stage(driver).get_attribute("data-loaded")
        started = time.monotonic()
        driver.execute_script(
            "const s = document.getElementById('slice'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('input'));",
            middle + 1,
        )
        _wait(
            driver,
            lambda d: stage(d).get_attribute("data-index") == str(middle)
            and stage(d).get_attribute("data-loaded") not in (None, "", before),
            what="a slice not fetched",
        )
        out["unfetched_slice_s"] = time.monotonic() - started
        slices = _rendered(driver)
        out["slice_kb"] = statistics.median(b for _, b, _ in slices) / 1000
        out["slices_fetched"] = len(slices)
        jpeg_first_ms = slices[0][2]
        jpeg_slice_ms = statistics.median(ms for _, _, ms in slices)
        pngs = [_png(driver, world["instances"][i]) for i in (0, 1, middle)]
        out["png_slice_kb"] = statistics.median(b for b, _ in pngs) / 1000
        out["png_list_to_first_image_s"] = (
            out["list_to_first_image_s"] + (pngs[0][1] - jpeg_first_ms) / 1000
        )
        out["png_next_slice_s"] = out["next_slice_s"] + (pngs[1][1] - jpeg_slice_ms) / 1000
        out["png_unfetched_slice_s"] = (
            out["unfetched_slice_s"] + (pngs[2][1] - jpeg_slice_ms) / 1000
        )
        return out
    finally:
        driver.quit()


def report(r):
    rows = [
        ("QR link -> list", "qr_to_list_s", "qr_to_list_s", "s", None),
        ("QR link -> thumbnail shown", "qr_to_thumbnail_s", "png_qr_to_thumbnail_s", "s", None),
        (
            "list -> first image",
            "list_to_first_image_s",
            "png_list_to_first_image_s",
            "s",
            "first_image_s",
        ),
        ("next slice", "next_slice_s", "png_next_slice_s", "s", None),
        ("a slice not fetched yet", "unfetched_slice_s", "png_unfetched_slice_s", "s", None),
        ("bytes per browsing slice", "slice_kb", "png_slice_kb", "KB", "slice_kb"),
        ("bytes per thumbnail", "thumbnail_kb", "png_thumbnail_kb", "KB", "thumbnail_kb"),
    ]
    lines = [
        f"Slow 3G (400 kbit/s, 400 ms RTT), Chromium {r['viewport'][0]}x{r['viewport'][1]}, "
        f"{r['slices']}-slice 512x512 CT",
        f"{'':28} {'JPEG (now)':>12} {'PNG (before)':>13} {'PNG/JPEG':>9}  target",
    ]
    for label, now, before, unit, target in rows:
        ratio = r[before] / r[now] if r[now] else float("nan")
        goal = ""
        if target:
            goal = f"<= {TARGETS[target]:g} {unit}: " + (
                "met" if r[now] <= TARGETS[target] else "MISSED"
            )
        lines.append(
            f"{label:28} {r[now]:>10.1f} {unit:<2}{r[before]:>11.1f} {unit:<2}{ratio:>8.1f}x  {goal}"
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--json", help="write the raw figures here too")
    args = parser.parse_args()
    from tests import chromium

    if chromium.missing():
        print(f"Chromium is needed: {chromium.missing()}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="slow3g-") as tmp:
        stack, world = prepare(Path(tmp), args.slices)
        try:
            result = dict(measure(world), slices=args.slices)
        finally:
            stack.stop_all()
    print(report(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
