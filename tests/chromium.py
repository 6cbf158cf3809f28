"""Headless Chromium for the page tests: Debian's `chromium` and
`chromium-driver` driven by Selenium, with the driver's path given so that
Selenium Manager never downloads anything; what a page shows, and that a
Spanish page shows no English (assert_no_english)."""

import base64
import io
import os
import re
import tempfile
import time
from pathlib import Path

from babel.messages.pofile import read_po
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]
PHONE = {"width": 390, "height": 844}
# The Spanish messages (assert_no_english).
CATALOG = (
    Path(__file__).resolve().parent.parent
    / "authsvc"
    / "translations"
    / "es"
    / "LC_MESSAGES"
    / "messages.po"
)
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/156.0.0.0 Mobile Safari/537.36"
)


def missing():
    """What is not installed, for the failure message (CI must have both)."""
    return [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]


def start(language, phone=False, downloads=None):
    """A fresh browser (own profile) asking for `language` first."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument("--user-data-dir=" + tempfile.mkdtemp(prefix="chromium-"))
    options.add_argument("--lang=" + language)
    prefs = {"intl.accept_languages": language}
    if downloads:
        prefs.update(
            {"download.default_directory": str(downloads), "download.prompt_for_download": False}
        )
    options.add_experimental_option("prefs", prefs)
    if phone:
        options.add_experimental_option(
            "mobileEmulation",
            {"deviceMetrics": {**PHONE, "pixelRatio": 2.0, "touch": True}, "userAgent": PHONE_UA},
        )
    else:
        options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    if downloads:
        driver.execute_cdp_cmd(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
    return driver


def wait(driver, predicate, timeout=20, what="condition", interval=0.1):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate(driver)
            if value:
                return value
        except Exception as exc:  # element not there yet, page changing
            last_error = exc
        time.sleep(interval)
    raise AssertionError(
        f"timed out after {timeout} s waiting for {what}"
        + (f" (last error: {last_error!r})" if last_error else "")
        + f"; the page: {page_state(driver)}"
    )


# What a page shows and what its last requests answered, for a wait that
# timed out: which request failed or hung, and the alert the page showed.
PAGE_STATE = """
const alerts = [...document.querySelectorAll('[role=alert]')]
  .map((e) => e.textContent.trim()).filter(Boolean);
const requests = performance.getEntriesByType('resource').slice(-8).map((e) => {
  const u = new URL(e.name);
  return u.pathname + (u.search ? '?…' : '') + ' ' + (e.responseStatus || '-')
    + ' ' + Math.round(e.duration) + 'ms';
});
return {url: location.pathname, alerts, requests,
        stage: document.getElementById('stage') ? {...document.getElementById('stage').dataset} : null};
"""


def page_state(driver):
    try:
        return driver.execute_script(PAGE_STATE)
    except Exception as exc:  # the page itself is gone or hung
        return f"unreadable ({exc!r})"


def fetch_status(driver, url):
    """The status of a GET made by the page itself (its cookies, its origin)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'})"
        ".then(r => done(r.status)).catch(e => done(-1));",
        url,
    )


def image_spread(driver, element_id):
    """Max - min grey level of an <img> drawn on a canvas (0: blank image)."""
    return driver.execute_script(
        """
        const img = document.getElementById(arguments[0]);
        if (!img.complete || !img.naturalWidth) return -1;
        const c = document.createElement('canvas');
        c.width = img.naturalWidth; c.height = img.naturalHeight;
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        const d = g.getImageData(0, 0, c.width, c.height).data;
        let lo = 255, hi = 0;
        for (let i = 0; i < d.length; i += 4) {
          const v = (d[i] + d[i + 1] + d[i + 2]) / 3;
          if (v < lo) lo = v; if (v > hi) hi = v;
        }
        return hi - lo;""",
        element_id,
    )


def pdf_page_size_mm(driver):
    """Width and height (mm) of the first page Chromium prints, honouring the
    page's CSS @page size, and the PDF itself."""
    pdf = driver.execute_cdp_cmd(
        "Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True}
    )
    raw = base64.b64decode(pdf["data"])
    box = re.search(rb"/MediaBox\s*\[\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*\]", raw)
    x0, y0, x1, y1 = (float(v) for v in box.groups())
    return round((x1 - x0) * 25.4 / 72, 1), round((y1 - y0) * 25.4 / 72, 1), raw


def pdf_pages(raw):
    return len(re.findall(rb"/Type\s*/Page(?!s)", raw))


def decode_qr(png_bytes):
    import zxingcpp
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes)).convert("L")
    return [r.text for r in zxingcpp.read_barcodes(image)]


def english_strings():
    """Every English message of the app whose Spanish text differs (words of
    three letters or more), to be looked for in Spanish pages."""
    with open(CATALOG, "rb") as fh:
        catalog = read_po(fh)
    found = set()
    for m in catalog:
        if m.id and m.string and m.id != m.string:
            for part in re.split(r"%\(\w+\)s", m.id):
                part = part.strip(" .:;,?()")
                if len(part) >= 3 and part.lower() not in m.string.lower():
                    found.add(part)
    return found


def visible_text(driver):
    """The text of the page and of its screen-reader labels and titles."""
    return "\n".join(
        [driver.title, driver.find_element(By.TAG_NAME, "body").text]
        + driver.execute_script(
            "return [...document.querySelectorAll('[aria-label],[alt],[title],[placeholder]')]"
            ".map(e => [e.getAttribute('aria-label'), e.getAttribute('alt'), e.getAttribute('title'),"
            " e.getAttribute('placeholder')].filter(Boolean).join(' '))"
        )
    )


def assert_no_english(driver):
    text = visible_text(driver)
    leaked = [
        s for s in english_strings() if re.search(r"(?<!\w)" + re.escape(s) + r"(?!\w)", text)
    ]
    assert not leaked, f"English on a Spanish page {driver.current_url}: {leaked}"
