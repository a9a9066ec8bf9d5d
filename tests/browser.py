"""Headless Chromium for the report's tests (Selenium with Debian's chromium + chromium-driver).

`open_page` loads a file at a 1280x800 viewport and returns what the tests ask of it: console messages,
every network request the page made, the DOM. Where chromium, its driver or selenium is missing the tests
skip with a line saying what to install (.ci/run installs them).

A screenshot of a report (the README's): python -m tests.browser REPORT.html OUT.png [SECTION [HEIGHT]]
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import sys
from pathlib import Path

VIEWPORT = (1280, 800)
BINARIES = (("chromium", "chromium-browser", "google-chrome"), ("chromedriver",))


def missing() -> str | None:
    """Why no browser can be driven here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for names in BINARIES:
        if not any(shutil.which(n) for n in names):
            return f"{names[0]} is not installed (apt-get install chromium chromium-driver)"
    return None


@contextlib.contextmanager
def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(n) for n in BINARIES[0] if shutil.which(n))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--hide-scrollbars",
                f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # The driver named explicitly: Selenium would otherwise try to download one.
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        # The viewport itself 1280x800, whatever the window decorations take.
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": VIEWPORT[0], "height": VIEWPORT[1], "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


def requests(driver) -> list[str]:
    """Every URL the page asked for since the last call (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def screenshot(driver, path: str | Path, height: int | None = None, section: str | None = None) -> Path:
    """The page from its top (or from the section with id `section`), `height` pixels tall (the rest of the
    page if None), as PNG."""
    top = driver.execute_script(f"return document.getElementById('{section}').offsetTop - 8") if section else 0
    height = height or driver.execute_script("return document.documentElement.scrollHeight") - top
    clip = {"x": 0, "y": top, "width": VIEWPORT[0], "height": height, "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    Path(path).write_bytes(base64.b64decode(shot["data"]))
    return Path(path)


if __name__ == "__main__":
    if why := missing():
        sys.exit(why)
    with chromium() as d:
        d.get(Path(sys.argv[1]).resolve().as_uri())
        section = sys.argv[3] if len(sys.argv) > 3 else None
        print(screenshot(d, sys.argv[2], int(sys.argv[4]) if len(sys.argv) > 4 else None, section))
