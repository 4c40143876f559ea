"""The web app in a real browser: Debian's Chromium driven by Selenium through Debian's
chromedriver (never a downloaded browser or driver), headless, with a fresh profile, and with
Chromium's own background traffic (updates, sync, Google lookups) turned off, so that nothing
leaves this machine."""

import os
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-quic", "--no-first-run", "--no-default-browser-check",
    "--disable-features=Translate,OptimizationHints,MediaRouter",
]  # fmt: skip
# Chromium keeps a window at least this wide; a narrower one (a phone's) is emulated (Browser).
NARROWEST_WINDOW = 500

# What keeps the shown view from fitting its window (Browser.layout_problems): form controls
# without a label, how far the page is wider than the window and what sticks out, and the
# controls past its right edge (out of reach without scrolling sideways).
LAYOUT = """
const main = document.getElementById('main');
const name = (e) => e.getAttribute('aria-label') || e.textContent.trim() || e.name;
const past = (e, slack) => e.getBoundingClientRect().right > window.innerWidth + slack;
return {
  unlabelled: [...main.querySelectorAll('input, select, textarea')]
    .filter(e => e.type !== 'hidden' && e.labels.length === 0 && !e.getAttribute('aria-label')
                 && !e.getAttribute('aria-labelledby'))
    .map(e => e.name),
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  sticking_out: [...document.querySelectorAll('body *')].filter(e => past(e, 1))
    .map(e => `${e.tagName}#${e.id}.${e.className}: ${e.getBoundingClientRect().right}`),
  out_of_reach: [...main.querySelectorAll('button, a, input, select, textarea')]
    .filter(e => past(e, 0)).map(name),
};
"""

# axe-core, the accessibility engine, as bin/lib.sh ensure_axe_core installs it (./bin/test does).
AXE_CORE = ROOT / ".tools" / "axe-core" / "node_modules" / "axe-core" / "axe.min.js"
# Its WCAG 2.0 and 2.1 rules of levels A and AA (what the ADA Title II rule asks of a public
# university), and Label in Name (2.5.3), which axe-core still calls experimental and leaves out
# unless asked: a button that shows "Join waitlist (4 of 15)" must not be named otherwise.
AXE_RUN = """
const done = arguments[arguments.length - 1];
axe.run(document, {
  runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']},
  rules: {'label-content-name-mismatch': {enabled: true}},
  resultTypes: ['violations'],
}).then(
  (r) => done({version: axe.version, violations: r.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    where: v.nodes.map((n) => n.target.join(' ') + ': ' + n.failureSummary.replace(/\\s+/g, ' ')),
  }))}),
  (e) => done({error: String(e)}),
);
"""
# What fails a view: the two worst of axe-core's four impacts (minor, moderate, serious, critical).
BLOCKING = ("serious", "critical")


class Browser:
    """One browser session (its own profile, so its own sessionStorage) on the web app."""

    def __init__(self, url: str, *, width: int = 1200, height: int = 900) -> None:
        os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for downloads
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-")
        for flag in [*FLAGS, f"--window-size={width},{height}"]:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self._profile.name}")
        self.driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        self.url = url
        self.size = (width, height)
        self._emulate_narrow_window()

    def _emulate_narrow_window(self) -> None:
        """A window narrower than Chromium allows is shown in this tab as a phone of that width
        shows it (a new tab needs it again: start_over)."""
        width, height = self.size
        if width < NARROWEST_WINDOW:
            self.driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )

    def close(self) -> None:
        self.driver.quit()
        self._profile.cleanup()

    def start_over(self) -> None:
        """As a new visitor: one new tab in place of every other (a tab's sessionStorage, where
        the app keeps its session, is its own; closing the old tabs stops their pages), and the
        app's stored data, every cookie and the cache cleared."""
        driver = self.driver
        old = driver.window_handles
        driver.switch_to.new_window("tab")
        fresh = driver.current_window_handle
        for handle in old:
            driver.switch_to.window(handle)
            driver.close()
        driver.switch_to.window(fresh)
        driver.execute_cdp_cmd(
            "Storage.clearDataForOrigin", {"origin": self.url, "storageTypes": "all"}
        )
        driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        self._emulate_narrow_window()

    # what a person sees

    def wait(self, condition, timeout: float = 15.0, message: str = ""):
        """Wait for `condition(driver)` to be truthy; on timeout, say what the page showed."""
        try:
            return WebDriverWait(self.driver, timeout).until(condition, message)
        except TimeoutException:
            shown = self.driver.find_element(By.TAG_NAME, "body").text
            message = f"{message or 'waited in vain'}; the page showed:\n{shown}"
            raise TimeoutException(message) from None

    def ready(self) -> None:
        """Wait until the view has loaded (main is no longer aria-busy)."""
        self.wait(
            lambda d: d.find_element(By.ID, "main").get_attribute("aria-busy") == "false",
            message="the view did not finish loading",
        )

    def text(self, element_id: str) -> str:
        return self.driver.find_element(By.ID, element_id).text

    def main_text(self) -> str:
        self.ready()
        return self.text("main")

    def open(self, view: str = "") -> None:
        self.driver.get(f"{self.url}/{view}")
        self.ready()

    def go(self, view: str) -> None:
        """Open `view` from the menu and wait until it is drawn. The click changes the hash,
        whose event comes after the click returns: until the menu marks `view` current (the
        frame does so as it starts drawing it), the view before may still look ready."""
        self.driver.find_element(By.LINK_TEXT, view).click()

        def current(driver) -> bool:
            try:
                return any(
                    link.get_attribute("aria-current") == "page"
                    for link in driver.find_elements(By.CSS_SELECTOR, "#nav a")
                    if link.text.startswith(view)
                )
            except StaleElementReferenceException:  # the menu drawn anew as we read it
                return False

        self.wait(current, message=f"the menu never marked {view!r} as the current view")
        self.ready()

    def reload(self) -> None:
        self.driver.refresh()
        self.ready()

    def layout_problems(self) -> list[str]:
        """What keeps the shown view from fitting its window (a phone's, say), in words: form
        controls without a label, a page wider than the window (and what sticks out), controls
        past its right edge. Empty when it fits."""
        shown = self.driver.execute_script(LAYOUT)
        problems = []
        if shown["unlabelled"]:
            problems.append(f"form controls without a label: {shown['unlabelled']}")
        if shown["overflow"] > 0:
            problems.append(
                f"the page is {shown['overflow']} px wider than the {self.size[0]} px window;"
                f" sticking out: {shown['sticking_out']}"
            )
        if shown["out_of_reach"]:
            problems.append(f"controls past the window's right edge: {shown['out_of_reach']}")
        return problems

    def axe_problems(self, view: str) -> list[str]:
        """axe-core's serious and critical violations of WCAG 2.1 A and AA on the page as it is
        shown, one line each (rule, impact, what it asks, where); every violation it found,
        of any impact, is printed under `view`'s name. Empty when there is none."""
        if not AXE_CORE.exists():
            raise AssertionError(
                f"{AXE_CORE.relative_to(ROOT)} is missing: ./bin/test installs axe-core"
                " (bin/lib.sh ensure_axe_core)"
            )
        if not self.driver.execute_script("return typeof axe !== 'undefined'"):
            self.driver.execute_script(AXE_CORE.read_text())
        found = self.driver.execute_async_script(AXE_RUN)
        assert "error" not in found, f"axe-core failed on {view}: {found['error']}"
        lines = [
            f"{v['id']} ({v['impact']}): {v['help']}; at {'; '.join(v['where'])}"
            for v in found["violations"]
        ]
        print(f"axe-core {found['version']} on {view}: {len(lines)} violation(s)")
        for line in lines:
            print(f"  {line}")
        blocking = [v["impact"] in BLOCKING for v in found["violations"]]
        return [line for line, blocks in zip(lines, blocking, strict=True) if blocks]

    # what a person does

    def sign_in(self, username: str, password: str) -> None:
        self.open()
        self.fill("Username", username)
        self.fill("Password", password)
        self.press("Sign in")
        self.wait(
            lambda d: self.text("nav") or self.text("problem"),
            message="signing in showed neither the views nor a problem",
        )
        if self.text("problem"):
            raise Refused(self.text("problem"))
        self.ready()

    def field(self, label: str):
        """The control of the visible label `label` (in the view, not in a hidden one)."""
        for found in self.driver.find_elements(By.XPATH, f"//label[normalize-space()='{label}']"):
            if found.is_displayed():
                return self.driver.find_element(By.ID, found.get_attribute("for"))
        raise AssertionError(f"no visible field labelled {label!r}")

    def fill(self, label: str, value: str, *, within: str = "") -> None:
        scope = self.driver.find_element(By.XPATH, within) if within else self.driver
        labels = scope.find_elements(By.XPATH, f".//label[normalize-space()='{label}']")
        assert labels, f"no field labelled {label!r}"
        control = self.driver.find_element(By.ID, labels[0].get_attribute("for"))
        if control.tag_name == "select":
            control.find_element(By.XPATH, f".//option[contains(., '{value}')]").click()
        else:
            control.clear()
            control.send_keys(value)

    def press(self, name: str, *, within: str = "") -> None:
        """Click the button whose accessible name (aria-label, else its text) is `name`. A view
        drawn anew between finding the button and clicking it (a search's answer, the catalog's
        live counts) left a stale element: the button of the new drawing is found and clicked."""
        named = f"@aria-label='{name}' or (not(@aria-label) and normalize-space()='{name}')"
        xpath = f".//button[{named}]"
        for attempt in range(3):
            scope = self.driver.find_element(By.XPATH, within) if within else self.driver
            try:
                buttons = [b for b in scope.find_elements(By.XPATH, xpath) if b.is_displayed()]
                assert buttons, f"no button {name!r} in view:\n{self.text('main')}"
                buttons[0].click()
                return
            except StaleElementReferenceException:
                if attempt == 2:
                    raise
                time.sleep(0.2)

    def act(self, action) -> str:
        """Do `action` and wait for its outcome: the notice, or the problem shown instead.
        Returns the notice; a problem is raised as an AssertionError with the API's words."""
        self.driver.execute_script(
            "document.getElementById('notice').textContent = '';"
            "document.getElementById('problem').textContent = '';"
        )
        action()
        self.wait(
            lambda d: self.text("notice") or self.text("problem"),
            message="the action showed neither a notice nor a problem",
        )
        self.ready()
        if self.text("problem"):
            raise Refused(self.text("problem"))
        return self.text("notice")

    def refused(self, action) -> str:
        """Do `action`, which must be refused; the message shown."""
        try:
            notice = self.act(action)
        except Refused as refusal:
            return str(refusal)
        raise AssertionError(f"not refused; the app said: {notice}")

    def confirm(self, answer: str) -> None:
        """Answer the confirmation dialog with the button `answer`."""
        self.wait(
            lambda d: d.find_element(By.ID, "confirm").get_attribute("open") is not None,
            message="no confirmation was asked",
        )
        self.press(answer, within="//dialog[@id='confirm']")

    def press_and_confirm(self, name: str, answer: str) -> str:
        """Press `name`, answer its confirmation with `answer`, and return the outcome."""
        return self.act(lambda: (self.press(name), self.confirm(answer)))

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))


class Browsers:
    """The browsers of a test module. Each test opens the ones it needs, each a Chromium of its
    own (two students at two computers); at the test's end each is handed back (`give_back`)
    and starts over as a new visitor (Browser.start_over), and a later test that asks for one of
    the same window size gets it again. That costs about 0.3 s, where starting a Chromium, its
    first page and quitting it cost about 1.5 s."""

    def __init__(self) -> None:
        self.idle: list[Browser] = []

    def open(self, url: str, *, width: int = 1200, height: int = 900) -> Browser:
        for browser in self.idle:
            if browser.size == (width, height) and browser.url == url:
                self.idle.remove(browser)
                return browser
        return Browser(url, width=width, height=height)

    def give_back(self, browser: Browser) -> None:
        try:
            browser.start_over()
        except WebDriverException:  # a browser the test left unusable is not kept
            browser.close()
        else:
            self.idle.append(browser)

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class Refused(AssertionError):
    """The app showed a problem (the API's refusal) where a success was expected."""
