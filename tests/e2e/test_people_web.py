"""Issue 28's people in the web app, in Debian's Chromium on the whole real cluster: the
registrar's accounts (a staff account made with its roles, then changed), the instructor's
roster with names and its CSV file, and the student's catalog a term at a time, with what each
button will do and counts that change while it is open (tests/e2e/test_web_app.py's fixtures and
helpers)."""

import secrets

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from harness import http
from harness.cluster import Cluster
from harness.seed import DEMO_PASSWORD
from tests.e2e import test_web_app as web
from tests.e2e.browser import Browser
from tests.e2e.test_web_app import SHOTS, create_section, find, find_id, new_code, register, student

# test_web_app's fixtures, used here by name: its cluster (short tokens) and its browsers.
cluster_env = web.cluster_env
kept_browsers = web.kept_browsers
browsers = web.browsers
open_browser = web.open_browser
registrar = web.registrar

pytestmark = pytest.mark.e2e

REGISTRAR_ID = 1


def staff_token(cluster: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.token(REGISTRAR_ID, 'rhenderson', 'registrar')}"}


def signed_in(cluster: Cluster, username: str, password: str) -> dict[str, str]:
    reply = http.post(
        cluster.auth_gateway.url + "/auth_api/login",
        json={"username": username, "password": password},
    )
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def enroll_by_api(cluster: Cluster, account: dict, password: str, section_id: int) -> str:
    reply = http.post(
        cluster.enroll_gateway.url + f"/enroll_api/users/{account['id']}/enrollments",
        json={"section_id": section_id},
        headers=signed_in(cluster, account["username"], password),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()["status"]


def new_section_by_api(cluster: Cluster, course_id: int, number: int, **fields) -> dict:
    reply = http.post(
        cluster.enroll_gateway.url + "/enroll_api/sections",
        json={"course_id": course_id, "section_number": number, **fields},
        headers=staff_token(cluster),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def new_course_by_api(cluster: Cluster, code: str, title: str) -> dict:
    reply = http.post(
        cluster.enroll_gateway.url + "/enroll_api/courses",
        json={"department_id": 1, "code": code, "title": title, "credits": 4},
        headers=staff_token(cluster),
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


# The roster's CSV as the page made it: each Blob handed to URL.createObjectURL is kept, and the
# last one read (the page's Content-Security-Policy allows no fetch of a blob: address).
KEEP_BLOBS = """
window.blobs = [];
const made = URL.createObjectURL;
URL.createObjectURL = (blob) => { window.blobs.push(blob); return made.call(URL, blob); };
"""
LAST_BLOB = "const done = arguments[arguments.length - 1]; window.blobs.at(-1).text().then(done);"


def test_the_registrar_makes_an_instructor_who_downloads_their_roster_as_csv(
    cluster: Cluster, open_browser, registrar: Browser
):
    username = f"prof-{secrets.token_hex(3)}"
    password = f"pw-{secrets.token_hex(8)}"
    registrar.go("Accounts")
    registrar.screenshot(SHOTS / "accounts.png")
    new_account = "//form[.//h3[@id='new-account']]"
    registrar.fill("Username (3-32 of a-z 0-9 . _ -)", username, within=new_account)
    registrar.fill("First name", "Grace", within=new_account)
    registrar.fill("Last name", "Hopper", within=new_account)
    registrar.fill("Password (at least 12 characters)", password, within=new_account)
    created = registrar.act(lambda: registrar.press("Create account"))
    panel = registrar.text("account-detail")
    registrar.screenshot(SHOTS / "account-made.png")

    label = create_section(registrar, new_code(), capacity=1, instructor=username)
    section_id = find_id(cluster, label)
    seated, seated_password = register(cluster, "Ada")
    waiting, waiting_password = register(cluster, "Alan")
    assert enroll_by_api(cluster, seated, seated_password, section_id) == "enrolled"
    assert enroll_by_api(cluster, waiting, waiting_password, section_id) == "waitlisted"

    instructor = open_browser()
    instructor.sign_in(username, password)
    instructor.go("My sections")
    instructor.driver.execute_script(KEEP_BLOBS)
    instructor.press(f"Roster of {label}")
    instructor.wait(lambda d: d.find_elements(By.ID, "roster-csv"))
    roster = instructor.text("roster")
    link = instructor.driver.find_element(By.ID, "roster-csv")
    filename = link.get_attribute("download")
    csv = instructor.driver.execute_async_script(LAST_BLOB)
    link.send_keys(Keys.ENTER)  # the download, by keyboard (where Chromium keeps it is not ours)
    instructor.screenshot(SHOTS / "roster.png")

    assert created == f"Created {username} (instructor), {username}@example.edu."
    assert "Grace Hopper" in panel and "instructor" in panel
    assert f"Ada Browser {seated['username']} {seated['email']}" in roster
    assert f"1 Alan Browser {waiting['username']} {waiting['email']}" in roster
    assert filename == f"{label.replace(' ', '-')}-roster.csv"
    assert csv.split("\r\n") == [
        "Section,Status,Waitlist position,Last name,First name,Username,Email",
        f"{label},enrolled,,Browser,Ada,{seated['username']},{seated['email']}",
        f"{label},waitlisted,1,Browser,Alan,{waiting['username']},{waiting['email']}",
        "",
    ]


def test_the_registrar_changes_roles_names_and_disables_an_account(
    cluster: Cluster, registrar: Browser
):
    account, _ = register(cluster, "Mallory")
    registrar.go("Accounts")
    registrar.fill("Name, username or email contains", account["email"])  # found by address
    registrar.press("Find accounts")
    registrar.wait(lambda d: account["username"] in registrar.text("account-results"))
    registrar.press(f"Edit {account['username']}")
    panel = "//section[@aria-labelledby='account-title']"
    registrar.fill("Last name", "Renamed", within=panel)
    renamed = registrar.act(lambda: registrar.press("Change names"))
    registrar.driver.find_element(
        By.XPATH, f"{panel}//input[@name='roles' and @value='instructor']"
    ).click()
    roles = registrar.act(lambda: registrar.press("Change roles"))
    for ticked in registrar.driver.find_elements(
        By.XPATH, f"{panel}//input[@name='roles']"
    ):  # every role taken away: the API's 422, beside the roles
        if ticked.is_selected():
            ticked.click()
    no_role = registrar.refused(lambda: registrar.press("Change roles"))
    beside_roles = registrar.driver.find_element(
        By.XPATH,
        f"{panel}//fieldset[.//input[@name='roles' and @aria-invalid='true']]"
        "//p[@class='field-error']",
    ).text
    disabled = registrar.act(lambda: registrar.press(f"Disable {account['username']}"))
    row = registrar.text("account-results")
    enabled = registrar.act(lambda: registrar.press(f"Enable {account['username']}"))
    registrar.fill("New password (at least 12 characters)", "short", within=panel)
    # The browser's own check (minlength) stops it first; the API's 422 is the same rule.
    too_short = registrar.driver.execute_script(
        "return document.querySelector(\"input[name='password'][minlength]\").validity.tooShort"
    )
    registrar.go("Audit trail")
    registrar.fill(
        "User id", str(account["id"]), within="//form[@aria-label='Account changes filters']"
    )
    registrar.press("Filter", within="//form[@aria-label='Account changes filters']")
    registrar.wait(lambda d: "account.disable" in registrar.text("account-audit-results"))
    trail = registrar.text("account-audit-results")

    assert renamed == f"{account['username']} is now Mallory Renamed."
    assert roles.startswith(f"{account['username']} now holds student, instructor")
    assert "roles" in no_role and "422" not in no_role
    assert beside_roles and beside_roles in no_role
    assert disabled == f"{account['username']} is disabled: they cannot sign in."
    assert "Mallory Renamed" in row and "Disabled" in row
    assert enabled == f"{account['username']} is enabled again."
    assert too_short is True
    for action in ("account.names", "account.roles", "account.disable", "account.enable"):
        assert action in trail


def test_a_student_picks_a_term_and_sees_counts_change_without_a_reload(
    cluster: Cluster, open_browser
):
    code = new_code()
    course = new_course_by_api(cluster, code, "Terms and Live Counts")
    meets = [{"days": "MW", "start": "09:00", "end": "10:15"}]
    fall = new_section_by_api(
        cluster, course["id"], 1, term_id=1, capacity=2, waitlist_capacity=3, instructor_id=3,
        meetings=meets,
    )  # fmt: skip
    spring = new_section_by_api(cluster, course["id"], 2, term_id=2, capacity=1)
    watcher = student(cluster, open_browser, "Wanda")
    other = student(cluster, open_browser, "Otto")  # at another computer

    watcher.go("Catalog")
    watcher.fill("Term", "Spring 2027")
    watcher.fill("Search by course code or title", code)
    watcher.press("Search")
    watcher.wait(lambda d: f"matching “{code}” in Spring 2027" in watcher.text("main"))
    in_spring = watcher.text("catalog-results")
    watcher.fill("Term", "Fall 2026")
    watcher.wait(lambda d: f"matching “{code}” in Fall 2026" in watcher.text("main"))
    in_fall = watcher.text("catalog-results")
    watcher.driver.execute_script("window.notReloaded = true;")
    watcher.field("Search by course code or title").click()  # focus on the search box
    assert web.enroll(other, f"{code}-01") == f"Enrolled in {code}-01."
    one_left = watcher.wait(
        lambda d: (t := watcher.text("catalog-results")) and "1 of 2" in t and t, 20
    )
    second, second_password = register(cluster, "Olga")
    assert enroll_by_api(cluster, second, second_password, fall["id"]) == "enrolled"
    full = watcher.wait(
        lambda d: (t := watcher.text("catalog-results")) and "Join waitlist (1 of 3)" in t and t, 20
    )
    still_here = watcher.driver.execute_script("return window.notReloaded === true")
    focused = watcher.driver.switch_to.active_element.get_attribute("name")
    watcher.screenshot(SHOTS / "catalog-terms.png")

    assert f"{code}-02" in in_spring and f"{code}-01" not in in_spring
    assert f"{code}-01" in in_fall and f"{code}-02" not in in_fall
    # Credits, instructor, meeting times, seats, waitlist, status, and what the button will do.
    assert (
        "Terms and Live Counts 4 Kenneth Avery MW 09:00–10:15 2 of 2 0 of 3 Open Enroll" in in_fall
    )
    assert "0 of 2" in full and f"{code}-01" in one_left
    assert still_here and focused == "q"
    assert spring["term_id"] == 2


def test_the_buttons_say_why_not_and_the_week_is_a_grid_at_a_phones_width(
    cluster: Cluster, open_browser
):
    code = new_code()
    course = new_course_by_api(cluster, code, "Reasons and Weeks")
    meets = [{"days": "TR", "start": "13:00", "end": "14:15"}]
    open_one = new_section_by_api(cluster, course["id"], 1, capacity=5, meetings=meets)
    frozen = new_section_by_api(cluster, course["id"], 2, capacity=5)
    no_waitlist = new_section_by_api(cluster, course["id"], 3, capacity=0, waitlist_capacity=0)
    http.patch(
        cluster.enroll_gateway.url + f"/enroll_api/sections/{frozen['id']}",
        json={"freeze": True},
        headers=staff_token(cluster),
    ).raise_for_status()
    phone = student(cluster, open_browser, "Petra", width=375, height=812)

    listed = find(phone, code)
    frozen_row = f"//tr[th[normalize-space()='{code}-02']]//button[contains(@class, 'enroll')]"
    frozen_buttons = phone.driver.find_elements(By.XPATH, frozen_row)
    catalog_layout = phone.layout_problems()
    enrolled = phone.act(lambda: phone.press(f"Enroll in {code}-01"))
    phone.press(f"Prerequisites of {code}")
    phone.wait(lambda d: "has no prerequisites" in phone.text("prerequisites"))
    phone.go("My schedule")
    schedule = phone.main_text()
    schedule_layout = phone.layout_problems()
    phone.screenshot(SHOTS / "schedule-week-phone.png")

    assert f"{code}-02" in listed and "Frozen by the registrar: not taking students now." in listed
    assert "Full, and its waitlist is full (0 of 0)." in listed
    assert frozen_buttons == []  # no button on the frozen one
    assert catalog_layout == []
    assert enrolled == f"Enrolled in {code}-01."
    assert "My week" in schedule and f"{code}-01 13:00–14:15" in schedule
    assert schedule_layout == []
    assert no_waitlist["waitlist_capacity"] == 0 and open_one["capacity"] == 5


def test_keyboard_only_a_staff_account_and_an_instructors_permit(cluster: Cluster, open_browser):
    registrar = open_browser(width=375, height=812)
    registrar.sign_in("rhenderson", DEMO_PASSWORD)
    registrar.go("Accounts")
    accounts_layout = registrar.layout_problems()
    username = f"ta-{secrets.token_hex(3)}"
    password = f"pw-{secrets.token_hex(8)}"
    # Tab from field to field, Space ticks Student beside Instructor, Tab on to the button.
    registrar.field("Username (3-32 of a-z 0-9 . _ -)").send_keys(
        username, Keys.TAB, "Katherine", Keys.TAB, "Johnson", Keys.TAB, Keys.TAB, password,
        Keys.TAB, Keys.SPACE, Keys.TAB, Keys.TAB, Keys.TAB,
    )  # fmt: skip
    on_button = registrar.driver.switch_to.active_element.text
    created = registrar.act(lambda: registrar.driver.switch_to.active_element.send_keys(Keys.ENTER))

    label = create_section(registrar, new_code(), capacity=1, instructor=username)
    section_id = find_id(cluster, label)
    seated, seated_password = register(cluster, "Emmy")
    waiting, waiting_password = register(cluster, "Rosalind")
    enroll_by_api(cluster, seated, seated_password, section_id)
    enroll_by_api(cluster, waiting, waiting_password, section_id)

    instructor = open_browser(width=375, height=812)
    instructor.sign_in(username, password)
    instructor.go("My sections")
    instructor.press(f"Roster of {label}")
    instructor.wait(lambda d: d.find_elements(By.ID, "roster-csv"))
    roster_layout = instructor.layout_problems()
    instructor.fill("Student", waiting["username"])
    student_field = instructor.field("Student")
    # From the student picked, by keyboard: Tab to "Capacity", Space to tick it, on past the four
    # other waivers to the button, Enter to grant.
    student_field.send_keys(Keys.TAB, Keys.SPACE, *[Keys.TAB] * 5)
    on_grant = instructor.driver.switch_to.active_element.text
    granted = instructor.act(
        lambda: instructor.driver.switch_to.active_element.send_keys(Keys.ENTER)
    )
    permits = http.get(
        cluster.enroll_gateway.url + f"/enroll_api/sections/{section_id}/permits",
        headers=staff_token(cluster),
    ).json()

    assert accounts_layout == []
    assert (on_button, on_grant) == ("Create account", "Grant permit")
    assert created == f"Created {username} (student, instructor), {username}@example.edu."
    assert roster_layout == []
    assert granted == f"Permit granted to {waiting['username']} for {label}: it waives capacity."
    assert [(p["user_id"], p["waives"]) for p in permits] == [(waiting["id"], ["capacity"])]
