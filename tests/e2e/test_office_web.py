"""The registrar's office in the web app (issue 28), in Debian's headless Chromium on the whole
real cluster, as tests/e2e/test_web_app.py runs it (its fixtures and helpers, and its cluster:
the same `cluster_env`): holds placed and lifted, a capacity permit, a term with a registration
window that opens while the student waits, the CSV import of completed courses, the API's 422
beside the field it names, keyboard-only use, and every office view at a phone's width and
through axe-core's WCAG 2.1 AA rules."""

import re
import secrets
import time
from datetime import datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from harness import http
from harness.cluster import Cluster
from harness.seed import DEMO_PASSWORD
from tests.e2e import test_web_app as web
from tests.e2e.browser import Browser
from tests.e2e.test_web_app import SHOTS, create_section, enroll, find, find_id, new_code, student

pytestmark = pytest.mark.e2e

# The web app module's fixtures, found here by name: its cluster (the same settings, so the same
# running cluster), its Chromiums handed from test to test, and the signed-in registrar.
cluster_env = web.cluster_env
kept_browsers = web.kept_browsers
browsers = web.browsers
open_browser = web.open_browser
registrar = web.registrar

GRANT = "//form[.//h3[@id='grant-permit']]"
GRANT_CSS = "form[aria-labelledby=grant-permit]"
NEW_TERM = "//form[.//h3[@id='new-term']]"
NEW_WINDOW = "//form[.//h3[@id='new-window']]"


def username(browser: Browser) -> str:
    return browser.account["username"]  # type: ignore[attr-defined]


def go(browser: Browser, view: str) -> None:
    """Open the view `view` and wait for its heading (the view before may still read as loaded
    the moment after the link is followed)."""
    browser.go(view)
    browser.wait(lambda d: browser.text("view-title") == view)
    browser.ready()


def choose_student(registrar: Browser, name: str) -> None:
    """In the Students view, find the student `name` and show their records."""
    go(registrar, "Students")
    registrar.fill("Find a student (name, username or id)", name)
    registrar.press("Find")
    registrar.wait(lambda d: name in registrar.text("student-results"))
    registrar.press(f"Choose {name}")
    registrar.wait(lambda d: f"Place a hold on {name}" in registrar.text("student"))


def api(cluster: Cluster) -> tuple[str, dict[str, str]]:
    token = cluster.token(1, "rhenderson", "registrar")
    return cluster.enroll_gateway.url + "/enroll_api", {"Authorization": f"Bearer {token}"}


def test_a_hold_stops_the_students_enroll_with_its_reason_until_it_is_lifted(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=5)
    person = student(cluster, open_browser, "Hana")
    name = username(person)
    reason = "Library fine: three books overdue"

    choose_student(registrar, name)
    registrar.fill("Reason", reason)
    placed = registrar.act(lambda: registrar.press("Place hold"))
    holds = registrar.text("student")
    open_holds = registrar.text("open-holds")
    lifted_before = registrar.text("lifted-holds")
    registrar.screenshot(SHOTS / "office-students.png")
    find(person, label[:-3])
    refusal = person.refused(lambda: person.press(f"Enroll in {label}"))
    lifted = registrar.press_and_confirm(f"Lift the hold on {name}: {reason}", "Lift hold")
    after = registrar.text("student")
    still_open = registrar.text("open-holds")
    history = registrar.text("lifted-holds")
    enrolled = enroll(person, label)

    assert placed == f"Placed a hold on {name}: {reason}."
    assert reason in holds and "Open" in holds and "by Rita Henderson" in holds
    assert f"Hana Browser ({name})" in open_holds and reason in open_holds
    assert name not in lifted_before
    assert "has a hold" in refusal and reason in refusal and "409" not in refusal
    assert lifted == f"Lifted the hold on {name}."
    assert "Lifted" in after and name not in still_open
    # The lifted hold stays on record: who placed it and who lifted it, with when.
    row = next(line for line in history.splitlines() if name in line)
    by = "by Rita Henderson"
    assert re.fullmatch(rf".*{re.escape(reason)} \S.* {by} \S.* {by}", row), history
    assert "by Rita Henderson" in after.split("Lifted")[-1]
    assert enrolled == f"Enrolled in {label}."


def test_a_capacity_permit_lets_a_student_take_a_seat_past_the_limit(
    cluster: Cluster, open_browser, registrar: Browser
):
    label = create_section(registrar, new_code(), capacity=1)
    first = student(cluster, open_browser, "Ines")
    second = student(cluster, open_browser, "Jon")
    enroll(first, label)

    go(registrar, "Permits")
    registrar.fill("Section", label, within=GRANT)
    registrar.fill("Student (username or id)", "nobody-at-all", within=GRANT)
    registrar.field("Capacity: a seat past the limit").click()
    unknown = registrar.refused(lambda: registrar.press("Grant permit"))
    registrar.fill("Student (username or id)", username(second), within=GRANT)
    granted = registrar.act(lambda: registrar.press("Grant permit"))
    listed = registrar.text("section-permits")
    registrar.screenshot(SHOTS / "office-permits.png")
    seated = enroll(second, label, "Enroll (your permit)")
    url, auth = api(cluster)
    section = http.get(f"{url}/sections/{find_id(cluster, label)}", headers=auth).json()
    revoke = registrar.driver.find_element(
        By.CSS_SELECTOR, "#section-permits button[aria-label^='Revoke permit']"
    ).get_attribute("aria-label")
    revoked = registrar.press_and_confirm(revoke, "Revoke permit")
    after = registrar.text("section-permits")

    assert "nobody-at-all" in unknown
    assert granted == f"Granted {username(second)} a permit for {label}: waives capacity."
    assert f"Permits of {label}" in listed and username(second) in listed and "Active" in listed
    assert seated == f"Enrolled in {label}."
    assert (section["enrolled"], section["capacity"]) == (2, 1)
    assert revoked == f"Revoked {username(second)}'s permit for {label}."
    assert "Revoked" in after and "Active" not in after


# Set a datetime-local input of a form to this moment + `seconds`, in the browser's own time
# zone, as a person picking it would; returns the moment as the API will store it (UTC).
SET_MOMENT = """
const [form, name, seconds] = arguments;
const t = new Date(Date.now() + seconds * 1000);
t.setMilliseconds(0);
const two = (n) => String(n).padStart(2, "0");
const input = document.querySelector(`form[aria-labelledby=${form}] [name=${name}]`);
input.value = `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}` +
  `T${two(t.getHours())}:${two(t.getMinutes())}:${two(t.getSeconds())}`;
return t.toISOString();
"""


def test_a_window_that_opens_in_a_few_seconds_refuses_then_admits_the_student(
    cluster: Cluster, open_browser, registrar: Browser
):
    term = f"T{secrets.token_hex(3).upper()}"
    label = create_section(registrar, new_code(), capacity=5)
    code = label[:-3]
    person = student(cluster, open_browser, "Kiri")

    go(registrar, "Terms")
    registrar.fill("Code", term, within=NEW_TERM)
    registrar.fill("Name", "Office test term", within=NEW_TERM)
    registrar.driver.execute_script(SET_MOMENT, "new-term", "add_deadline", 7 * 86400)
    created = registrar.act(lambda: registrar.press("Create term"))
    registrar.wait(lambda d: f"Term {term}" in registrar.text("term"))
    url, auth = api(cluster)
    terms = http.get(f"{url}/terms?limit=1000", headers=auth).json()
    term_id = next(t["id"] for t in terms if t["code"] == term)
    course_id = http.get(f"{url}/sections/{find_id(cluster, label)}", headers=auth).json()
    body = {"course_id": course_id["course_id"], "term_id": term_id, "section_number": 2,
            "capacity": 5}  # fmt: skip
    assert http.post(f"{url}/sections", json=body, headers=auth).status_code == 201
    registrar.fill("Or these students (usernames or ids)", username(person), within=NEW_WINDOW)
    registrar.driver.execute_script(SET_MOMENT, "new-window", "closes_at", 3600)
    opens = registrar.driver.execute_script(SET_MOMENT, "new-window", "opens_at", 12)
    windowed = registrar.act(lambda: registrar.press("Create window"))
    windows = registrar.text("term")
    registrar.driver.execute_script("document.getElementById('term-title').scrollIntoView()")
    registrar.screenshot(SHOTS / "office-terms.png")
    find(person, code)
    early = person.refused(lambda: person.press(f"Enroll in {code}-02"))
    # While the window is still shut: the term renamed, its add deadline taken away (an empty
    # field), its drop deadline set.
    edit = "//form[.//h3[@id='edit-term']]"
    registrar.fill("Name", "Office test term, renamed", within=edit)
    registrar.driver.execute_script(
        "document.querySelector('form[aria-labelledby=edit-term] [name=add_deadline]').value = ''"
    )
    drop = registrar.driver.execute_script(SET_MOMENT, "edit-term", "drop_deadline", 14 * 86400)
    saved = registrar.act(lambda: registrar.press("Save term"))
    changed = http.get(f"{url}/terms/{term_id}", headers=auth).json()
    time.sleep(max(0.0, datetime.fromisoformat(opens).timestamp() - time.time()) + 1)
    on_time = person.act(lambda: person.press(f"Enroll in {code}-02"))
    delete = registrar.driver.find_element(
        By.CSS_SELECTOR, "#term button[aria-label^='Delete window']"
    ).get_attribute("aria-label")
    deleted = registrar.press_and_confirm(delete, "Delete window")

    assert created == f"Created term {term}."
    assert windowed.startswith(f"Created a registration window of {term} for 1 student: ")
    assert username(person) in windows and "Delete" in windows
    assert "registration window" in early and f"opens at {opens}" in early, (early, opens)
    assert saved == f"Saved term {term}."
    assert (changed["name"], changed["add_deadline"]) == ("Office test term, renamed", None)
    assert changed["drop_deadline"] == drop
    assert on_time == f"Enrolled in {code}-02."
    assert deleted == f"Deleted a registration window of {term}."
    assert f"{term} has no registration window" in registrar.text("term")


def test_a_csv_with_a_bad_line_names_it_and_a_good_file_imports(
    cluster: Cluster, open_browser, registrar: Browser, tmp_path: Path
):
    person = student(cluster, open_browser, "Lupe")
    user_id = person.account["id"]  # type: ignore[attr-defined]
    go(registrar, "Records")
    bad = "\n".join(
        ["user_id,course_code,term,grade", f"{user_id},CPSC 131,2026-SP,A",
         f"{user_id},NOPE 999,,B", "abc,CPSC 131,,"]
    )  # fmt: skip
    registrar.fill("Or paste the CSV", bad)
    refusal = registrar.refused(lambda: registrar.press("Import"))
    problems = registrar.text("csv-problems")
    registrar.driver.execute_script("document.getElementById('csv-problems').scrollIntoView()")
    registrar.screenshot(SHOTS / "office-records.png")
    good = tmp_path / "completed.csv"
    good.write_text(f"user_id,course_code,term,grade\n{user_id},CPSC 131,2026-SP,A-\n")
    registrar.field("CSV file").send_keys(str(good))
    imported = registrar.act(lambda: registrar.press("Import"))
    url, auth = api(cluster)
    completed = http.get(f"{url}/users/{user_id}/completed-courses", headers=auth).json()

    assert "line 3" in refusal and "409" not in refusal
    assert "Nothing was imported" in problems and "Line 3: no course 'NOPE 999'" in problems
    assert "Line 4: user_id 'abc' is not a user id" in problems and "Line 2" not in problems
    assert imported == "Imported 1 row of completed courses."
    assert [(c["course_code"], c["grade"]) for c in completed] == [("CPSC 131", "A-")]


def test_the_apis_422_is_shown_beside_the_field_it_names(
    cluster: Cluster, open_browser, registrar: Browser
):
    person = student(cluster, open_browser, "Mina")
    choose_student(registrar, username(person))
    refusal = registrar.refused(lambda: registrar.press("Place hold"))  # no reason given
    reason = registrar.field("Reason")
    invalid = reason.get_attribute("aria-invalid")
    beside = registrar.driver.find_element(By.ID, reason.get_attribute("aria-describedby")).text
    registrar.fill("Credits a term (empty: the default, 18)", "41")
    too_many = registrar.refused(lambda: registrar.press("Set credit limit"))
    limit = registrar.field("Credits a term (empty: the default, 18)")
    limit_invalid = limit.get_attribute("aria-invalid")
    limit_note = registrar.driver.find_element(By.ID, limit.get_attribute("aria-describedby")).text
    registrar.screenshot(SHOTS / "office-422.png")
    registrar.fill("Reason", "Transcript request pending")
    registrar.act(lambda: registrar.press("Place hold"))  # drawn again: no mark left
    cleared = registrar.field("Reason").get_attribute("aria-invalid")
    go(registrar, "Permits")
    registrar.fill("Student (username or id)", username(person), within=GRANT)
    nothing_waived = registrar.refused(lambda: registrar.press("Grant permit"))
    boxes = registrar.driver.find_elements(By.CSS_SELECTOR, f"{GRANT_CSS} input[name=waives]")
    group_note = registrar.driver.find_element(
        By.CSS_SELECTOR, f"{GRANT_CSS} fieldset .field-error"
    ).text

    assert "reason" in refusal and "422" not in refusal
    assert invalid == "true" and "at least 1 character" in beside
    assert "40" in limit_note and limit_invalid == "true"
    assert "credit_limit" in too_many
    assert cleared is None
    assert "waives" in nothing_waived and "at least 1 item" in group_note
    assert {b.get_attribute("aria-invalid") for b in boxes} == {"true"} and len(boxes) == 5


def test_keyboard_only_the_registrar_finds_a_student_and_places_a_hold(
    cluster: Cluster, open_browser, registrar: Browser
):
    person = student(cluster, open_browser, "Nell")
    name = username(person)
    go(registrar, "Students")

    def keys(*typed: str) -> None:
        registrar.driver.switch_to.active_element.send_keys(*typed)

    registrar.field("Find a student (name, username or id)").send_keys(name, Keys.ENTER)
    registrar.wait(lambda d: name in registrar.text("student-results"))
    keys(Keys.TAB, Keys.TAB)  # past Find, to the first Choose
    assert registrar.driver.switch_to.active_element.get_attribute("aria-label") == f"Choose {name}"
    keys(Keys.ENTER)
    registrar.wait(
        lambda d: registrar.driver.switch_to.active_element.get_attribute("id") == "student-title"
    )
    keys(Keys.TAB)
    assert registrar.driver.switch_to.active_element.get_attribute("name") == "reason"
    placed = registrar.act(lambda: keys("Keyboard only", Keys.ENTER))
    # The view is drawn anew with the hold: the focus is back on the form's button, not lost.
    registrar.wait(lambda d: d.switch_to.active_element.text == "Place hold")
    keys(Keys.SHIFT, Keys.TAB)
    again = registrar.driver.switch_to.active_element.get_attribute("name")

    assert placed == f"Placed a hold on {name}: Keyboard only."
    assert again == "reason"


OFFICE_VIEWS = ["Students", "Permits", "Terms", "Records"]


def show_office_view(browser: Browser, view: str) -> None:
    """Open the office view `view` with what it shows once used: a student's records (the
    seed's held student), a section's permits, a term's deadlines and windows."""
    go(browser, view)
    if view == "Students":
        browser.fill("Find a student (name, username or id)", "38")
        browser.press("Find")
        browser.wait(lambda d: "Choose" in browser.text("student-results"))
        browser.driver.find_element(By.CSS_SELECTOR, "#student-results button").click()
        browser.wait(lambda d: "Place a hold" in browser.text("student"))
    if view == "Permits":
        browser.press("Show permits")
        browser.wait(lambda d: "Permits of" in browser.text("section-permits"))
    if view == "Terms":
        browser.driver.find_element(By.CSS_SELECTOR, "button[aria-label^='Manage term']").click()
        browser.wait(lambda d: "New registration window" in browser.text("term"))


@pytest.mark.parametrize("view", OFFICE_VIEWS)
def test_each_office_view_fits_a_phone_with_every_control_labelled(
    cluster: Cluster, open_browser, view: str
):
    phone = open_browser(width=375, height=800)  # shown as a 375 px phone shows it (Browser)
    phone.sign_in("rhenderson", DEMO_PASSWORD)
    assert phone.driver.execute_script("return window.innerWidth") == 375
    show_office_view(phone, view)
    phone.screenshot(SHOTS / f"office-phone-{view.lower()}.png")
    problems = phone.layout_problems()

    assert problems == [], f"{view} at a phone's width"


def test_axe_core_finds_no_serious_wcag_violation_in_the_office_views(registrar: Browser):
    """axe-core (WCAG 2.1 A and AA, Label in Name too) on each office view as it is once used;
    every violation it finds is printed, a serious or critical one fails."""
    found = {}
    for view in OFFICE_VIEWS:
        show_office_view(registrar, view)
        found[view] = registrar.axe_problems(f"the registrar's {view}")

    assert {view: problems for view, problems in found.items() if problems} == {}


def test_prerequisites_by_course_code_and_a_class_level(
    cluster: Cluster, open_browser, registrar: Browser
):
    person = student(cluster, open_browser, "Oren")
    codes = "Course codes, separated by commas (empty: none)"
    go(registrar, "Records")
    registrar.fill("Course", "ENGL 101")
    registrar.press("Show prerequisites")
    registrar.wait(lambda d: "Prerequisites of ENGL 101" in registrar.text("course-prerequisites"))
    registrar.fill(codes, "cpsc 131, NOPE 1")
    unknown = registrar.refused(lambda: registrar.press("Save prerequisites"))
    marked = registrar.field(codes).get_attribute("aria-invalid")
    registrar.fill(codes, "cpsc  131")
    needs = registrar.act(lambda: registrar.press("Save prerequisites"))
    shown = registrar.text("course-prerequisites")
    find(person, "ENGL 101")
    refusal = person.refused(lambda: person.press("Enroll in ENGL 101-01"))
    registrar.fill(codes, "")
    cleared = registrar.act(lambda: registrar.press("Save prerequisites"))
    choose_student(registrar, username(person))
    registrar.fill("Class level", "Junior")
    leveled = registrar.act(lambda: registrar.press("Set class level"))

    assert "NOPE 1" in unknown and marked == "true"
    assert needs == "ENGL 101 now needs CPSC 131 completed first."
    assert "Now: CPSC 131." in shown
    assert "needs CPSC 131 completed first" in refusal and "409" not in refusal
    assert cleared == "ENGL 101 has no prerequisite now."
    assert leveled == f"{username(person)} is a junior now."
    assert "Class level: Junior." in registrar.text("student")
