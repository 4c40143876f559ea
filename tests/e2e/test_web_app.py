"""The web app (issue 15) in Debian's headless Chromium, driven by Selenium, on the whole real
cluster: the pages come from bin/web and call both KrakenD gateways, which allow the app's origin
by CORS. Every browser is its own session (its own profile and sessionStorage), as two students
at two computers are; a Chromium is used again by a later test only once it has started over as
a new visitor (a new tab, nothing stored: tests/e2e/browser.py Browsers).

Access tokens live ACCESS_TTL seconds in this module's cluster, so every scenario runs across
several token refreshes, and one test waits out a whole token lifetime. Screenshots are saved
under var/screenshots/."""

import itertools
import re
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By

from harness import http
from harness.auth_cluster import SHORT_ACCESS_TTL, SHORT_TOKENS_ENV
from harness.cluster import Cluster
from harness.procs import ROOT
from harness.seed import DEMO_PASSWORD
from tests.e2e.browser import CHROMEDRIVER, CHROMIUM, Browser, Browsers

pytestmark = pytest.mark.e2e

ACCESS_TTL = SHORT_ACCESS_TTL
SHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="module")
def cluster_env() -> dict[str, str]:
    return dict(SHORT_TOKENS_ENV)


@pytest.fixture(scope="module")
def kept_browsers() -> Iterator[Browsers]:
    """The module's Chromiums, handed from test to test as new visitors; all quit at its end."""
    kept = Browsers()
    try:
        yield kept
    finally:
        kept.close()


@pytest.fixture
def browsers(cluster: Cluster, kept_browsers: Browsers) -> Iterator[list[Browser]]:
    """Browsers opened on demand (`open_browser`) and all handed back at the end of the test:
    no page of a test outlives it, and no session or stored data passes to the next test."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.fail("Debian's chromium and chromium-driver are missing: ./bin/test installs them")
    opened: list[Browser] = []
    yield opened
    for browser in opened:
        kept_browsers.give_back(browser)


@pytest.fixture
def open_browser(cluster: Cluster, browsers: list[Browser], kept_browsers: Browsers):
    def open_one(**size) -> Browser:
        browser = kept_browsers.open(cluster.web.url, **size)
        browsers.append(browser)
        return browser

    return open_one


@pytest.fixture
def registrar(open_browser) -> Browser:
    browser = open_browser()
    browser.sign_in("rhenderson", DEMO_PASSWORD)
    return browser


# Course codes made by the browser tests, never the same twice in this process (each xdist
# worker has clusters of its own): WEB 100 ... WEB 999, then WEB 100A ... (random codes met
# each other once the office and people modules shared the cluster: "Course WEB 353 exists").
_CODES = itertools.count(secrets.randbelow(900))


def new_code() -> str:
    n = next(_CODES)
    suffix = "" if n < 900 else chr(ord("A") + (n // 900 - 1) % 26)
    return f"WEB {100 + n % 900}{suffix}"


def create_section(registrar: Browser, code: str, *, capacity: int, instructor: str = "") -> str:
    """The registrar creates a course and its section 1 in the Sections view; its label."""
    registrar.go("Sections")
    course = "//form[.//h3[@id='new-course']]"
    registrar.fill("Department", "CPSC", within=course)
    registrar.fill("Code", code, within=course)
    registrar.fill("Title", "Browsers on Registration Day", within=course)
    created = registrar.act(lambda: registrar.press("Create course"))
    assert created == f"Created {code} Browsers on Registration Day."
    section = "//form[.//h3[@id='new-section']]"
    registrar.fill("Course", code, within=section)
    registrar.fill("Capacity", str(capacity), within=section)
    registrar.fill("Waitlist capacity", "5", within=section)
    if instructor:
        registrar.fill("Instructor", instructor, within=section)
    assert registrar.act(lambda: registrar.press("Create section")) == f"Created {code}-01."
    return f"{code}-01"


def find(browser: Browser, query: str) -> str:
    """Search the catalog (the registrar's Sections view) for `query`; the results shown."""
    browser.go("Sections" if "Sections" in browser.text("nav") else "Catalog")
    browser.fill("Search by course code or title", query)
    browser.press("Search")
    browser.wait(lambda d: f"matching “{query}”" in browser.text("main"))
    return browser.text("catalog-results")


def enroll_button(says: str, label: str) -> str:
    """The accessible name of the catalog's button that says `says` for the section `label`: its
    visible words, then the section (logic.js enrollName; WCAG 2.5.3 Label in Name)."""
    return f"{says} {'for' if says.startswith('Join') else 'in'} {label}"


def enroll(browser: Browser, label: str, says: str = "Enroll") -> str:
    """Find the section `label` in the catalog and press its button, once it says `says` (the
    listing may come from the gateway's 2 s cache, from before another student's enroll)."""
    name = enroll_button(says, label)
    browser.wait(
        lambda d: (
            find(browser, label[:-3])
            and d.find_elements(By.XPATH, f"//button[@aria-label='{name}']")
        ),
        message=f"no button {name!r} in the catalog",
    )
    return browser.act(lambda: browser.press(name))


def register(cluster: Cluster, first_name: str) -> tuple[dict, str]:
    """A new student, signed up through the auth gateway: (account, password)."""
    password = f"pw-{secrets.token_hex(8)}"
    reply = http.post(
        cluster.auth_gateway.url + "/auth_api/register",
        json={"username": f"{first_name.lower()}-{secrets.token_hex(3)}", "password": password,
              "first_name": first_name, "last_name": "Browser"},
    )  # fmt: skip
    assert reply.status_code == 201, reply.text
    return reply.json(), password


def student(cluster: Cluster, open_browser, first_name: str, **size) -> Browser:
    account, password = register(cluster, first_name)
    browser = open_browser(**size)
    browser.sign_in(account["username"], password)
    browser.account = account  # type: ignore[attr-defined]
    return browser


def test_the_last_seat_the_waitlist_and_a_promotion_across_two_browsers(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=1)
    registrar.screenshot(SHOTS / "sections.png")
    first = student(cluster, open_browser, "Fatima")
    second = student(cluster, open_browser, "Sam")

    took_last_seat = enroll(first, label)
    waitlisted = enroll(second, label, "Join waitlist (1 of 5)")
    second.screenshot(SHOTS / "catalog-waitlisted.png")
    second.go("My schedule")
    second_schedule = second.main_text()
    second.screenshot(SHOTS / "waitlisted.png")

    first.go("My schedule")
    dropped = first.press_and_confirm(f"Drop {label}", "Drop")
    second.reload()
    after_reload = second.main_text()
    second.screenshot(SHOTS / "promoted.png")

    assert took_last_seat == f"Enrolled in {label}."
    assert waitlisted == f"Waitlisted for {label}, position 1."
    assert "You are not enrolled in any section." in second_schedule
    assert f"{label} Browsers on Registration Day Position 1" in second_schedule
    assert dropped == f"Dropped {label}."
    assert "Enrolled: 1 section, 3 credits" in after_reload and label in after_reload
    assert "You are not on any waitlist." in after_reload


def test_a_drop_in_a_frozen_section_promotes_nobody_until_it_is_unfrozen(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=1)
    seated = student(cluster, open_browser, "Noor")
    waiting = student(cluster, open_browser, "Ravi")
    enroll(seated, label)
    enroll(waiting, label, "Join waitlist (1 of 5)")

    find(registrar, label[:-3])
    registrar.press(f"Manage {label}")
    frozen = registrar.act(lambda: registrar.press(f"Freeze {label}"))
    seated.go("My schedule")
    seated.press_and_confirm(f"Drop {label}", "Drop")
    waiting.go("My schedule")
    while_frozen = waiting.main_text()
    # The catalog list may come from the gateway's 2 s cache: frozen shows within it.
    in_catalog = waiting.wait(lambda d: (t := find(waiting, label[:-3])) and "Frozen" in t and t)
    unfrozen = registrar.act(lambda: registrar.press(f"Unfreeze {label}"))
    waiting.go("My schedule")
    after_unfreeze = waiting.main_text()

    assert frozen == f"{label} is frozen: no one is promoted."
    assert "Waitlisted, position 1" in in_catalog and "Frozen" in in_catalog
    assert "You are not enrolled in any section." in while_frozen
    assert "Position 1" in while_frozen
    assert unfrozen == f"{label} is open again."
    assert label in after_unfreeze and "You are not on any waitlist." in after_unfreeze


def test_bad_input_in_a_form_shows_the_apis_message(
    cluster: Cluster, open_browser, registrar: Browser
):
    code = new_code()
    label = create_section(registrar, code, capacity=2)
    new_course = "//form[.//h3[@id='new-course']]"
    registrar.fill("Code", "web 1", within=new_course)
    registrar.fill("Title", "Lowercase", within=new_course)
    bad_code = registrar.refused(lambda: registrar.press("Create course"))
    new_section = "//form[.//h3[@id='new-section']]"
    registrar.fill("Course", code, within=new_section)
    taken_number = registrar.refused(lambda: registrar.press("Create section"))
    find(registrar, code)
    registrar.press(f"Manage {label}")
    registrar.fill("Capacity", "1000000", within="//section[@aria-labelledby='manage-title']")
    too_many = registrar.refused(lambda: registrar.press("Change capacity"))
    registrar.screenshot(SHOTS / "bad-input.png")

    assert "code" in bad_code and "pattern" in bad_code.lower()
    assert "1" in taken_number and "section" in taken_number.lower()
    assert "capacity" in too_many
    for message in (bad_code, taken_number, too_many):
        assert "422" not in message and "409" not in message  # a sentence, not a status


def test_a_full_waitlist_is_refused_with_the_apis_words(
    cluster: Cluster, open_browser, registrar: Browser
):
    """The page offered the last waitlist place, another student took it first: the press is
    refused in the API's words; the catalog then says why there is no button."""
    label = create_section(registrar, new_code(), capacity=0)
    section_id = find_id(cluster, label)
    first_id = 900_000 + 10 * secrets.randbelow(9_000)

    def wait_by_api(user_id: int) -> None:
        token = cluster.token(user_id, f"waiter{user_id}", "student")
        joined = http.post(
            cluster.enroll_gateway.url + f"/enroll_api/users/{user_id}/enrollments",
            json={"section_id": section_id},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert joined.status_code == 201, joined.text

    for user_id in range(first_id, first_id + 4):  # the waitlist holds 5: four wait
        wait_by_api(user_id)
    sixth = student(cluster, open_browser, "Late")
    offered = find(sixth, label[:-3])
    # Focus on the button: the live counts leave a focused control as it is.
    sixth.driver.execute_script(
        "document.querySelector(arguments[0]).focus()",
        f"button[aria-label='{enroll_button('Join waitlist (5 of 5)', label)}']",
    )
    wait_by_api(first_id + 4)  # the last place goes to someone else
    refusal = sixth.refused(lambda: sixth.press(enroll_button("Join waitlist (5 of 5)", label)))
    # The catalog's listing may be a cached one (the gateway's, then the browser's) for a while.
    full = "Full, and its waitlist is full (5 of 5)."
    after = sixth.wait(lambda d: (t := find(sixth, label[:-3])) and full in t and t)

    assert "Join waitlist (5 of 5)" in offered
    assert "waitlist" in refusal.lower() and "full" in refusal.lower()
    assert "409" not in refusal
    assert "Join waitlist" not in after.split(label)[1]


# In the page: the enroll POSTs' Idempotency-Keys (window.tries), every "Still trying…" the page
# showed (window.shown), and a fetch that loses the first enroll's answer after the service has
# it, then cuts the next `cuts` tries before they leave (as a dead instance or network would).
CUT_ENROLLS = """
const [cuts] = arguments;
window.tries = [];
window.shown = [];
new MutationObserver(() => {
  for (const s of document.querySelectorAll("span.trying")) {
    if (s.textContent && !window.shown.includes(s.textContent)) window.shown.push(s.textContent);
  }
}).observe(document.body, { subtree: true, childList: true, characterData: true });
const real = window.fetch;
window.fetch = async (url, init = {}) => {
  if (init.method !== "POST" || !String(url).endsWith("/enrollments")) return real(url, init);
  window.tries.push(init.headers["Idempotency-Key"]);
  if (window.tries.length === 1) {
    await real(url, init);  // applied: only its answer is lost
    throw new TypeError("Failed to fetch");
  }
  if (window.tries.length <= 1 + cuts) throw new TypeError("Failed to fetch");
  return real(url, init);
};
"""


def test_an_enroll_whose_answer_is_lost_is_retried_with_its_key_and_then_known(
    cluster: Cluster, open_browser, registrar: Browser
):
    """The issue's question, "did I get the seat?": the first try gets the seat but its answer is
    lost, and every retry is cut. The page says it is still trying, then that it is not known
    whether the enroll was done and that trying again is safe; pressing Enroll again sends the
    same key, and the service's replay of the first answer says "Enrolled": one seat taken."""
    label = create_section(registrar, new_code(), capacity=2)
    section_id = find_id(cluster, label)
    person = student(cluster, open_browser, "Retry")
    find(person, label[:-3])
    person.driver.execute_script(CUT_ENROLLS, 3)

    unknown = person.refused(lambda: person.press(f"Enroll in {label}"))
    shown = person.driver.execute_script("return window.shown")
    person.screenshot(SHOTS / "outcome-unknown.png")
    again = person.act(lambda: person.press(f"Enroll in {label}"))
    keys = person.driver.execute_script("return window.tries")
    token = cluster.token(1, "rhenderson", "registrar")
    section = http.get(
        cluster.enroll_gateway.url + f"/enroll_api/sections/{section_id}",
        headers={"Authorization": f"Bearer {token}"},
    ).json()

    assert "not known whether that was done" in unknown and "Trying again is safe" in unknown
    assert [t[: t.index(":")] for t in shown] == [f"Still trying… Enroll in {label}"] * 3
    assert [t[t.index("(try") :] for t in shown] == [f"(try {n} of 4)." for n in (2, 3, 4)]
    assert len(keys) == 5 and len(set(keys)) == 1 and len(keys[0]) == 36, keys
    assert again == f"Enrolled in {label}."
    assert section["enrolled"] == 1 and section["seats_available"] == 1


def find_id(cluster: Cluster, label: str) -> int:
    code, number = label.rsplit("-", 1)
    token = cluster.token(1, "rhenderson", "registrar")
    sections = http.get(
        cluster.enroll_gateway.url + "/enroll_api/sections",
        params={"q": code},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    return next(s["id"] for s in sections if s["section_number"] == int(number))


def test_the_instructor_sees_roster_and_waitlist_and_drops_a_student(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=1)  # no instructor yet
    find(registrar, label[:-3])
    registrar.press(f"Manage {label}")
    registrar.fill("Instructor", "kavery", within="//section[@aria-labelledby='manage-title']")
    assigned = registrar.act(lambda: registrar.press("Assign instructor"))
    seated = student(cluster, open_browser, "Omar")
    waiting = student(cluster, open_browser, "Lena")
    enroll(seated, label)
    enroll(waiting, label, "Join waitlist (1 of 5)")
    teacher = open_browser()
    teacher.sign_in("kavery", DEMO_PASSWORD)

    teacher.go("My sections")
    teacher.press(f"Roster of {label}")
    teacher.wait(lambda d: f"Roster of {label}" in teacher.text("roster"))
    roster = teacher.text("roster")
    teacher.screenshot(SHOTS / "roster.png")
    seated_name = seated.account["username"]  # type: ignore[attr-defined]
    dropped = teacher.press_and_confirm(f"Drop {seated_name} from {label}", "Drop student")
    teacher.wait(lambda d: seated_name not in teacher.text("roster"))
    after = teacher.text("roster")

    signed_out = teacher.act(lambda: teacher.press("Sign out"))
    teacher.reload()  # the tab's session is gone: a reload does not sign back in

    assert assigned == f"Instructor of {label} changed."
    assert signed_out == "You are signed out."
    assert teacher.field("Username").is_displayed() and teacher.text("nav") == ""
    assert "Omar Browser" in roster and waiting.account["username"] in roster  # type: ignore[attr-defined]
    assert dropped == f"Dropped {seated_name} from {label}."
    assert "Lena Browser" in after and "No one is waiting." in after  # promoted to the roster


def test_the_registrar_filters_the_audit_trail(cluster: Cluster, registrar: Browser):
    registrar.go("Audit trail")
    registrar.fill("Action", "section.create")
    registrar.press("Filter")

    def actions_shown(driver) -> set[str] | None:
        """The Action column of the table shown; None while it is being drawn again."""
        try:
            rows = driver.find_elements("css selector", "#audit-results tbody tr")
            return {row.find_elements("css selector", "td")[2].text for row in rows}
        except StaleElementReferenceException:  # the rows were replaced as we read them
            return None

    # The unfiltered trail may show first; the filtered one has section.create rows only.
    registrar.wait(
        lambda d: actions_shown(d) == {"section.create"},
        message="the filtered trail never showed section.create rows alone",
    )
    registrar.fill("Actor id", "abc")
    refusal = registrar.refused(lambda: registrar.press("Filter"))
    registrar.screenshot(SHOTS / "audit.png")

    assert "actor_id" in refusal


def test_the_session_outlives_its_access_token_and_ends_with_a_message_when_disabled(
    cluster: Cluster, open_browser
):
    browser = student(cluster, open_browser, "Tess")
    time.sleep(ACCESS_TTL + 2)  # idle past the first access token's life
    browser.go("My schedule")
    still_in = browser.main_text()
    registrar_token = cluster.token(1, "rhenderson", "registrar")
    disabled = http.patch(
        cluster.auth_gateway.url + f"/auth_api/accounts/{browser.account['id']}",  # type: ignore[attr-defined]
        json={"disabled": True},
        headers={"Authorization": f"Bearer {registrar_token}"},
    )
    browser.wait(lambda d: browser.text("problem"), timeout=ACCESS_TTL + 5)
    ended = browser.text("problem")
    browser.screenshot(SHOTS / "session-ended.png")

    assert "My schedule" in still_in and "You are not enrolled in any section." in still_in
    assert disabled.status_code == 200
    assert ended.startswith("Your session has ended:") and "disabled" in ended
    assert "Sign in" in browser.main_text() and browser.field("Username").is_displayed()


def test_keyboard_only_sign_in_labelled_controls_and_a_phone_width_window(
    cluster: Cluster, open_browser
):
    from selenium.webdriver.common.keys import Keys

    phone = open_browser(width=390, height=844)
    phone.open()
    phone.field("Username").send_keys("ajohnson", Keys.TAB, DEMO_PASSWORD, Keys.ENTER)
    phone.wait(lambda d: "Catalog" in phone.text("nav"))
    phone.ready()
    phone.screenshot(SHOTS / "phone.png")
    problems = phone.layout_problems()

    assert phone.driver.execute_script("return window.innerWidth") == 390
    assert problems == []


@pytest.mark.parametrize(("gateway", "path", "method"), [
    ("enroll", "/enroll_api/sections", "GET"),
    ("enroll", "/enroll_api/users/9/enrollments", "POST"),
    ("auth", "/auth_api/login", "POST"),
    ("auth", "/auth_api/refresh", "POST"),
])  # fmt: skip
def test_both_gateways_allow_the_web_apps_origin_and_no_other(
    cluster: Cluster, gateway: str, path: str, method: str
):
    url = {"enroll": cluster.enroll_gateway, "auth": cluster.auth_gateway}[gateway].url + path

    def preflight(origin: str) -> httpx.Response:
        return httpx.options(url, headers={
            "Origin": origin, "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization,content-type",
        })  # fmt: skip

    ours = preflight(cluster.web.url)
    theirs = preflight("http://127.0.0.1:1")
    plain = http.get(
        cluster.enroll_gateway.url + "/enroll_api/sections",
        headers={
            "Origin": "http://evil.example",
            **bearer(cluster.token(9, "ajohnson", "student")),
        },
    )

    assert ours.headers["access-control-allow-origin"] == cluster.web.url
    assert method in ours.headers["access-control-allow-methods"]
    assert set(ours.headers["access-control-allow-headers"].split(",")) >= {
        "authorization", "content-type"
    }  # fmt: skip
    assert "access-control-allow-credentials" not in ours.headers
    assert "access-control-allow-origin" not in theirs.headers
    assert plain.status_code == 200 and "access-control-allow-origin" not in plain.headers


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_registrar_sees_account_changes_on_the_audit_page(cluster: Cluster, registrar: Browser):
    account, _ = register(cluster, "Audra")
    token = cluster.login("rhenderson", DEMO_PASSWORD)["access_token"]
    renamed = http.patch(
        cluster.auth_gateway.url + f"/auth_api/accounts/{account['id']}",
        json={"last_name": "Renamed"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert renamed.status_code == 200, renamed.text
    registrar.go("Audit trail")
    accounts = "//form[@aria-label='Account changes filters']"
    registrar.fill("User id", str(account["id"]), within=accounts)
    registrar.press("Filter", within=accounts)

    def rows_shown(driver) -> list[list[str]] | None:
        """The cells of each row of the table shown; None while it is being drawn again."""
        try:
            rows = driver.find_elements("css selector", "#account-audit-results tbody tr")
            return [[cell.text for cell in row.find_elements("css selector", "td")] for row in rows]
        except StaleElementReferenceException:  # the rows were replaced as we read them
            return None

    # The unfiltered trail may show first (another test's account change in it too); the
    # filtered one has this account's rows only.
    def filtered(driver) -> bool:
        shown = rows_shown(driver)
        return bool(shown) and all(cells[3] == str(account["id"]) for cells in shown)

    registrar.wait(filtered, message="the filtered account trail never showed")
    shown = rows_shown(registrar.driver)
    registrar.screenshot(SHOTS / "audit.png")
    assert shown is not None and len(shown) == 1, shown
    cells = shown[0]
    assert cells[1:4] == ["1 (registrar)", "account.names", str(account["id"])]
    assert "Renamed" in cells[4]


def test_signing_out_ends_the_session_at_the_auth_service(cluster: Cluster, open_browser):
    browser = student(cluster, open_browser, "Sigrid")
    refresh_token = browser.driver.execute_script(
        "return JSON.parse(sessionStorage.getItem('registration.session')).refresh"
    )

    signed_out = browser.act(lambda: browser.press("Sign out"))
    reused = http.post(
        cluster.auth_gateway.url + "/auth_api/refresh", json={"refresh_token": refresh_token}
    )

    assert signed_out == "You are signed out."
    # A copy of the tab's refresh token (a stolen one, say) no longer renews anything.
    assert (reused.status_code, reused.json()["code"]) == (401, "session_ended")


def test_a_promoted_student_sees_the_unread_notification_and_marks_it_read(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=1)
    first = student(cluster, open_browser, "Noor")
    second = student(cluster, open_browser, "Omar")
    enroll(first, label)
    enroll(second, label, "Join waitlist (1 of 5)")
    first.go("My schedule")
    first.press_and_confirm(f"Drop {label}", "Drop")

    second.reload()  # the nav asks for the unread count on each view
    inbox = "//nav/a[@href='#notifications']"
    second.wait(lambda d: "2" in d.find_element(By.XPATH, inbox).text)
    assert second.driver.find_element(By.XPATH, inbox).get_attribute("aria-label") == (
        "Notifications, 2 unread"
    )
    second.driver.find_element(By.XPATH, inbox).click()
    second.ready()
    listed = second.text("notification-results")
    second.screenshot(SHOTS / "notifications.png")
    marked = second.act(lambda: second.press("Mark all as read"))

    assert f"A seat came: you are enrolled in {label}" in listed
    assert f"Waitlisted for {label}, position 1" in listed
    assert listed.count("New") == 2
    assert marked == "Marked 2 notifications as read."
    second.wait(lambda d: d.find_element(By.XPATH, inbox).text == "Notifications")
    assert "New" not in second.text("notification-results")


def test_a_student_switches_section_and_a_full_one_is_refused_with_the_apis_words(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=5)
    code = label[:-3]
    token = cluster.token(1, "rhenderson", "registrar")
    url, auth = cluster.enroll_gateway.url + "/enroll_api", {"Authorization": f"Bearer {token}"}
    course_id = http.get(f"{url}/sections/{find_id(cluster, label)}", headers=auth).json()
    for number, capacity in ((2, 5), (3, 0)):
        body = {"course_id": course_id["course_id"], "section_number": number,
                "capacity": capacity, "waitlist_capacity": 5}  # fmt: skip
        assert http.post(f"{url}/sections", json=body, headers=auth).status_code == 201
    switcher = student(cluster, open_browser, "Ravi")
    enroll(switcher, label)
    switcher.go("My schedule")
    switcher.press(f"Switch {label} to another section")
    switcher.wait(lambda d: f"Switch {label} to" in switcher.main_text())
    switcher.fill("Section", f"{code}-03")
    refusal = switcher.refused(lambda: switcher.press("Switch"))
    switcher.fill("Section", f"{code}-02")
    switched = switcher.act(lambda: switcher.press("Switch"))
    schedule = switcher.main_text()

    assert f"{code}-03) is full" in refusal and "changed nothing" in refusal
    assert "409" not in refusal
    assert switched == f"Switched from {label} to {code}-02."
    assert f"{code}-02" in schedule and f"{label} " not in schedule


def test_a_seat_offer_is_set_by_the_registrar_and_accepted_by_the_student(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=1)
    find(registrar, label[:-3])
    registrar.press(f"Manage {label}")
    registrar.fill("When a seat comes free", "Offer the seat")
    registrar.fill("Hours to claim an offered seat", "2")
    mode = registrar.act(lambda: registrar.press("Set waitlist mode"))
    seated = student(cluster, open_browser, "Noor")
    waiting = student(cluster, open_browser, "Ravi")
    enroll(seated, label)
    enroll(waiting, label, "Join waitlist (1 of 5)")
    seated.go("My schedule")
    seated.press_and_confirm(f"Drop {label}", "Drop")
    waiting.go("My schedule")
    offered = waiting.main_text()
    accepted = waiting.act(lambda: waiting.press(f"Accept the seat in {label}"))
    schedule = waiting.main_text()

    assert mode == f"{label} now offers a freed seat to the next in line, to claim within 2 h."
    assert "Seats held for you" in offered and "a seat is held for you" in offered
    assert "You are not enrolled in any section." in offered  # held, not taken, until accepted
    assert accepted == f"Enrolled in {label}."
    assert "Seats held for you" not in schedule and "You are not on any waitlist." in schedule
    assert label in schedule.split("My waitlists")[0]


def test_a_student_passed_over_for_a_hold_sees_why_in_my_schedule(
    cluster: Cluster, open_browser, registrar: Browser
):
    """A seat comes free while the student first in line has a hold: it goes to the next one,
    and the first, who keeps their place, reads why in My schedule, in plain words."""
    label = create_section(registrar, new_code(), capacity=1)
    section_id = find_id(cluster, label)
    seated = student(cluster, open_browser, "Nia")
    enroll(seated, label)
    waiting = student(cluster, open_browser, "Pat")
    enroll(waiting, label, "Join waitlist (1 of 5)")
    behind, _ = register(cluster, "Quinn")
    joined = http.post(
        cluster.enroll_gateway.url + f"/enroll_api/users/{behind['id']}/enrollments",
        json={"section_id": section_id},
        headers=bearer(cluster.token(behind["id"], behind["username"], "student")),
    )
    held = http.post(
        cluster.enroll_gateway.url + f"/enroll_api/users/{waiting.account['id']}/holds",  # type: ignore[attr-defined]
        json={"reason": "Unpaid parking fines"},
        headers=bearer(cluster.token(1, "rhenderson", "registrar")),
    )
    seated.go("My schedule")
    seated.press_and_confirm(f"Drop {label}", "Drop")
    waiting.go("My schedule")
    schedule = waiting.main_text()
    waiting.screenshot(SHOTS / "passed-over.png")
    problems = waiting.axe_problems("My schedule, a place passed over")

    assert joined.json()["position"] == 2 and held.status_code == 201
    assert "Position 1" in schedule
    assert re.search(
        r"A seat came free on \S.* and went to the next student in line, because you had a hold"
        r" on your record: Unpaid parking fines\. The registrar's office lifts holds\. You keep"
        r" your place\.",
        schedule,
    ), schedule
    assert "user " not in schedule and "(hold " not in schedule  # not the API's words
    assert problems == []


# Accessibility: axe-core, the accessibility engine (bin/lib.sh ensure_axe_core installs it), on
# each view of each role as it is once used, WCAG 2.1 A and AA with Label in Name
# (Browser.axe_problems). Every violation found is printed; a serious or critical one fails.


def serious(found: dict[str, list[str]]) -> dict[str, list[str]]:
    """The views with a serious or critical violation, and what it was."""
    return {view: problems for view, problems in found.items() if problems}


def test_axe_core_finds_no_serious_wcag_violation_in_the_students_views(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=1)
    enroll(student(cluster, open_browser, "Seated"), label)
    visitor = open_browser()
    visitor.open()
    found = {"sign-in": visitor.axe_problems("the sign-in page")}
    person = student(cluster, open_browser, "Axel")
    find(person, label[:-3])  # a waitlist button ("Join waitlist (1 of 5)"), Prerequisites
    person.press(f"Prerequisites of {label[:-3]}")
    person.wait(lambda d: person.text("prerequisites"))
    found["Catalog"] = person.axe_problems("the student's catalog")
    enroll(person, label, "Join waitlist (1 of 5)")
    person.go("My schedule")  # a waitlist place and the week
    found["My schedule"] = person.axe_problems("the student's My schedule")
    person.driver.find_element(By.XPATH, "//nav/a[@href='#notifications']").click()
    person.wait(lambda d: "Waitlisted for" in person.text("main"))
    found["Notifications"] = person.axe_problems("the student's notifications")

    assert serious(found) == {}


def test_axe_core_finds_no_serious_wcag_violation_in_the_instructors_view(
    cluster: Cluster, open_browser
):
    teacher = open_browser()
    teacher.sign_in("kavery", DEMO_PASSWORD)
    teacher.go("My sections")
    teacher.driver.find_element(By.CSS_SELECTOR, "button[aria-label^='Roster of']").click()
    teacher.wait(lambda d: d.find_elements(By.ID, "roster-csv"))  # roster, waitlist, permit form
    problems = teacher.axe_problems("the instructor's My sections, a roster shown")

    assert problems == []


def test_axe_core_finds_no_serious_wcag_violation_in_the_registrars_views(registrar: Browser):
    found = {}
    find(registrar, "CPSC")
    registrar.driver.find_element(By.CSS_SELECTOR, "button[aria-label^='Manage CPSC']").click()
    registrar.wait(lambda d: d.find_elements(By.ID, "manage-title"))
    found["Sections"] = registrar.axe_problems("the registrar's Sections, a section managed")
    registrar.go("Accounts")
    registrar.press("Edit ajohnson")
    registrar.wait(lambda d: "ajohnson" in registrar.text("account-detail"))
    found["Accounts"] = registrar.axe_problems("the registrar's Accounts, an account open")
    registrar.go("Audit trail")
    found["Audit trail"] = registrar.axe_problems("the registrar's Audit trail")
    registrar.driver.find_element(By.XPATH, "//nav/a[@href='#notifications']").click()
    registrar.ready()
    found["Notifications"] = registrar.axe_problems("the registrar's notifications")

    assert serious(found) == {}
