"""Browser fixtures: one gunicorn server and one headless Chromium per test module.

Debian's chromium and chromidriver only (`.ci/run` installs them): the driver's path is
given explicitly, so Selenium Manager never looks for, or downloads, a browser.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import requests

from tests.server import ROOT, TOKENS, GunicornServer, bearer

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = ROOT / "var" / "screenshots"
SECRET = "console-test-secret-key-0123456789abcdef"
SIGNING_SEED = "Y29uc29sZS10ZXN0LWNoZWNrcG9pbnQtc2VlZC0zMmI="  # base64 of a 32-byte test seed
MAX_SHOT_HEIGHT = 6000

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never go online


def _browser_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


@pytest.fixture(scope="module")
def server():
    if not _browser_available():
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but chromium/chromedriver are not installed")
        pytest.skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    rulesets = _rulesets_subset()
    try:
        with GunicornServer({"RULES_API_TOKENS": TOKENS, "CONSOLE_SECRET_KEY": SECRET, "RULESETS_DIR": str(rulesets),
                             "PUBLISH_APPROVALS": "1", "DECISION_LOG_SIGNING_KEY": SIGNING_SEED,
                             "CHECKPOINT_SECONDS": "1"}) as srv:
            yield srv
    finally:
        shutil.rmtree(rulesets, ignore_errors=True)


def _rulesets_subset() -> Path:
    """The shipped rulesets the pages need (credit policy, size classification, two pricing
    versions to diff): every worker compiles what it loads, and the suite shares two cores."""
    target = Path(tempfile.mkdtemp(prefix="console-rulesets-"))
    source = ROOT / "rulesets"
    for name in ("sme-credit-policy", "sme-size-classification"):
        shutil.copytree(source / name, target / name)
    (target / "sme-loan-pricing").mkdir()
    for version in ("1.0.0", "1.1.0"):
        shutil.copy(source / "sme-loan-pricing" / f"{version}.yaml", target / "sme-loan-pricing")
    return target


class Console:
    """A signed-in (or not) browser on the console, with the checks every page gets."""

    def __init__(self, driver, server, module: str):
        self.driver = driver
        self.server = server
        self.module = module

    def open(self, path: str):
        self.driver.get(self.server.url + path)
        return self

    @property
    def path(self) -> str:
        return self.driver.current_url.removeprefix(self.server.url)

    def find(self, css: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def find_all(self, css: str):
        from selenium.webdriver.common.by import By
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str = "body") -> str:
        return self.find(css).text

    def submit(self, css: str):
        """Click what navigates (a button, a link) and wait until the next page has loaded."""
        from selenium.webdriver.support.wait import WebDriverWait

        from selenium.common.exceptions import WebDriverException

        page = self.find("html")
        self.find(css).click()

        def left(_driver) -> bool:
            # The old page's root is gone. Mid-navigation chromedriver may say so as a stale
            # element or as "Node with given id does not belong to the document": both mean gone.
            try:
                page.is_enabled()
            except WebDriverException:
                return True
            return False

        wait = WebDriverWait(self.driver, 30)
        wait.until(left)
        wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        return self

    def sign_in(self, token: str):
        self.open("/console/signin")
        self.find("#token").send_keys(token)
        return self.submit("#sign-in")

    def sign_out(self):
        return self.submit("#sign-out")

    def language(self, lang: str):
        if self.driver.find_element("css selector", "html").get_attribute("lang") != ("zh-CN" if lang == "zh" else "en"):
            self.submit("#switch-language")
        return self

    def screenshot(self, name: str) -> Path:
        """The whole page (up to MAX_SHOT_HEIGHT px) as var/screenshots/<module>-<name>.png."""
        import base64
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], MAX_SHOT_HEIGHT), "scale": 1}
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot",
                                           {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path = SCREENSHOTS / f"{self.module}-{name}.png"
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    # -- what the browser did ---------------------------------------------------------

    def network_events(self) -> list[dict]:
        """Every DevTools Network event since the last call (the log is drained)."""
        out = []
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message["method"].startswith("Network."):
                out.append(message)
        return out

    def console_messages(self) -> list[dict]:
        return self.driver.get_log("browser")

    def session_cookie(self) -> dict:
        return self.driver.get_cookie("console_session")

    def http(self) -> requests.Session:
        """A requests session holding this browser's console cookie (for raw form posts)."""
        s = requests.Session()
        cookie = self.session_cookie()
        s.cookies.set(cookie["name"], cookie["value"], path=cookie.get("path", "/"))
        return s


@pytest.fixture(scope="module")
def console(request, server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="console-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1360,900", "--lang=zh-CN"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield Console(driver, server, Path(request.module.__file__).stem.removeprefix("test_"))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# -- decisions to look at ----------------------------------------------------------------

APPLICANT = {"name": "杭州ABC贸易有限公司", "credit_code": "91330106MA2B3C4D5D", "industry_code": "C3670",
             "province": "浙江省", "employees": 120, "annual_revenue": 50000000, "total_assets": 30000000,
             "credit_rating": "BBB", "financials_sound": True}
REQUEST = {"amount": 300000, "term_months": 12, "purpose": "working_capital", "mode": "individual",
           "product": "working_capital_loan"}


def decide(server, application_id: str, *, compliance: dict | None = None, token: str = "core-7f3a9c") -> dict:
    body = {"ruleset": "sme-credit-policy", "as_of": "2026-01-15", "application_id": application_id,
            "input": {"applicant": APPLICANT, "request": REQUEST, **({"compliance": compliance} if compliance else {})}}
    response = requests.post(server.url + "/v1/decisions", json=body, headers=bearer(token), timeout=30)
    assert response.status_code == 200, response.text
    return response.json()
