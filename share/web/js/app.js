// The registration web app: sign-in, then the views of the signed-in person's roles, one per
// address (#catalog, #schedule, #teaching, #sections, #audit, #notifications). Every page is built with the DOM
// (never from HTML strings), so nothing a user typed can run as script.

import * as api from "./api.js";
import { accountsView } from "./accounts.js";
import { enrollAction, enrollName, meetingTimes, passedOverReason, rosterCsv, rosterFilename, scheduleGrid, WEEKDAYS } from "./logic.js";
import {
  $,
  act,
  attempt,
  cardForm,
  clearMessages,
  complain,
  confirmed,
  deleteButton,
  doneTrying,
  field,
  h,
  heading,
  label,
  main,
  notify,
  plural,
  showTrying,
  table,
  when,
  onRedraw,
  withFieldErrors,
} from "./ui.js";
import { permitsView, recordsView, studentsView, termsView } from "./office.js";


// --- sign-in ----------------------------------------------------------------------------------

function signInView() {
  const username = h("input", { name: "username", autocomplete: "username", required: true });
  const password = h("input", {
    name: "password",
    type: "password",
    autocomplete: "current-password",
    required: true,
  });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "view-title" },
    heading("Sign in"),
    field("Username", username),
    field("Password", password),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const signIn = (onRetry) => api.signIn(username.value.trim(), password.value, { onRetry });
    if (await act(button, signIn)) {
      clearMessages();
      // One render: a changed hash draws the view (hashchange); a second, overlapping render of
      // the same view would start its live counts twice.
      const home = homeOf(api.session().user.roles);
      if (location.hash === home) render();
      else location.hash = home;
    }
  });
  return [form];
}

// The enroll gateway may answer the catalog lists from its cache for 2 s (CATALOG_CACHE_SECONDS),
// so a section this person has just changed (created, enrolled in) is merged in from a live
// answer a while longer.
const RECENT_MS = 5000;
const recent = { sections: new Map(), courses: new Map() };

function remember(kind, item) {
  recent[kind].set(item.id, { item, at: Date.now() });
}

function withRecent(kind, list, belongs, order) {
  const byId = new Map(list.map((item) => [item.id, item]));
  for (const { item, at } of recent[kind].values()) {
    if (Date.now() - at < RECENT_MS && (byId.has(item.id) || belongs(item))) byId.set(item.id, item);
  }
  return [...byId.values()].sort(order);
}

const sectionOrder = (a, b) =>
  a.course_code.localeCompare(b.course_code) || a.section_number - b.section_number;

// --- student ----------------------------------------------------------------------------------

async function catalogView(user, manage = false) {
  const search = h("input", { type: "search", name: "q", value: currentSearch });
  const results = h("div", { id: "catalog-results" });
  const prerequisites = h("p", { id: "prerequisites", role: "status" });
  const terms = await api.enroll("/terms?limit=1000");
  const term = h(
    "select",
    { name: "term_id" },
    h("option", { value: "" }, "All terms"),
    terms.map((t) => h("option", { value: t.id, selected: String(t.id) === currentTerm }, t.name)),
  );
  const form = h(
    "form",
    { class: "search", role: "search" },
    field("Term", term),
    field("Search by course code or title", search),
    h("button", { type: "submit" }, "Search"),
  );
  let shown = { q: "", termId: "", mine: new Map(), how: () => ({}) };
  const listing = ({ q, termId }) =>
    `/sections?limit=1000${termId ? `&term_id=${termId}` : ""}${q ? `&q=${encodeURIComponent(q)}` : ""}`;
  // The sections of the listing, with the live copies of those this person just changed.
  const merged = (listed, { q, termId }) => {
    const needle = q.toLowerCase();
    const matches = (s) =>
      (!termId || String(s.term_id) === termId) &&
      (!needle || `${s.course_code}\n${s.course_title}`.toLowerCase().includes(needle));
    return withRecent("sections", listed, matches, sectionOrder);
  };
  const load = async () => {
    const q = search.value.trim();
    const termId = term.value;
    currentSearch = q;
    currentTerm = termId;
    const [listed, mine, permits] = await Promise.all([
      api.enroll(listing({ q, termId })),
      manage ? null : myPlaces(user),
      manage ? [] : api.enroll(`/users/${user.id}/permits?limit=1000`),
    ]);
    const waitlists = mine ? [...mine.values()].filter((p) => p.startsWith("Waitlisted")).length : 0;
    const permitted = new Set(
      permits.filter((p) => !p.revoked_at && p.waives.includes("capacity")).map((p) => p.section_id),
    );
    shown = { q, termId, mine, how: (s) => ({ waitlists, capacityPermit: permitted.has(s.id) }) };
    const rows = merged(listed, shown).map((s) =>
      h(
        "tr",
        { "data-section": s.id },
        h("th", { scope: "row" }, label(s)),
        h("td", {}, s.course_title),
        h("td", { class: "num" }, s.credits),
        h("td", {}, s.instructor_name || "—"),
        h("td", {}, meetingTimes(s)),
        h("td", { class: "num seats" }, `${s.seats_available} of ${s.capacity}`),
        h("td", { class: "num waiting" }, `${s.waitlisted} of ${s.waitlist_capacity}`),
        h("td", { class: "state" }, s.frozen ? "Frozen" : "Open"),
        h(
          "td",
          { class: "action" },
          manage ? manageButton(s) : mine.get(s.id) || enrollControl(user, s, shown.how(s)),
          manage ? null : [" ", prerequisitesButton(s, prerequisites)],
        ),
      ),
    );
    const termName = terms.find((t) => String(t.id) === termId)?.name;
    const where = termName ? ` in ${termName}` : "";
    results.replaceChildren(
      table(
        q ? `Sections matching “${q}”${where}` : `All sections${where}`,
        ["Section", "Title", "Credits", "Instructor", "Meets", "Seats left", "Waitlist", "Status", ""],
        rows,
        q ? `No section matches “${q}”${where}.` : `There are no sections${where} yet.`,
      ),
    );
  };
  // Live counts: the same listing asked again every POLL_MS while this view is shown and the
  // tab visible (the gateway caches it 2 s, so sooner would bring the same answer), the counts
  // and the enroll controls changed in place: nothing moves, focus stays where it is. The timer
  // is this view's own: it stops once the view has been shown and replaced, or if it was never
  // shown (a render overtaken by a newer one) within LIVE_WAIT_MS. A timer shared by every
  // catalog view let an overtaken render stop the shown view's counts.
  const built = Date.now();
  let wasShown = false;
  const poll = async () => {
    if (!results.isConnected) {
      if (wasShown || Date.now() - built > LIVE_WAIT_MS) clearInterval(timer);
      return;
    }
    wasShown = true;
    if (document.visibilityState !== "visible" || main().getAttribute("aria-busy") === "true") return;
    let listed;
    try {
      listed = await api.enroll(listing(shown), { onRetry: () => {} }); // quietly, as the badge
    } catch {
      return; // the next turn asks again
    }
    for (const s of merged(listed, shown)) {
      const row = results.querySelector(`tr[data-section="${s.id}"]`);
      if (!row) continue;
      const set = (cls, text) => {
        const cell = row.querySelector(`.${cls}`);
        if (cell.textContent !== text) cell.textContent = text;
      };
      set("seats", `${s.seats_available} of ${s.capacity}`);
      set("waiting", `${s.waitlisted} of ${s.waitlist_capacity}`);
      set("state", s.frozen ? "Frozen" : "Open");
      if (!manage && !shown.mine.has(s.id)) updateEnrollControl(row.querySelector(".action"), user, s, shown.how(s));
    }
  };
  const timer = setInterval(poll, POLL_MS);
  term.addEventListener("change", () => attempt(load));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(load);
  });
  await attempt(load);
  return [heading(manage ? "Sections" : "Catalog"), form, prerequisites, results];
}
let currentSearch = "";
let currentTerm = "";
const POLL_MS = 5000;
const LIVE_WAIT_MS = 60_000;

// A course's prerequisites (GET /courses/{id}/prerequisites), said in #prerequisites.
function prerequisitesButton(s, out) {
  return h(
    "button",
    {
      type: "button",
      "aria-label": `Prerequisites of ${s.course_code}`,
      onclick: () =>
        attempt(async () => {
          const needed = await api.enroll(`/courses/${s.course_id}/prerequisites`);
          out.textContent = needed.length
            ? `${s.course_code} ${s.course_title} requires: ${needed.map((c) => `${c.code} ${c.title}`).join("; ")}.`
            : `${s.course_code} ${s.course_title} has no prerequisites.`;
        }),
    },
    "Prerequisites",
  );
}

// Where the student already is: section id -> "Enrolled" or "Waitlisted, position N".
// The student's seats (their sections) and waitlist entries, live.
function myRecords(user) {
  return Promise.all([
    api.enroll(`/users/${user.id}/sections?type=enrolled&limit=1000`),
    api.enroll(`/users/${user.id}/waitlist?limit=1000`),
  ]);
}

async function myPlaces(user) {
  const [enrolled, waitlist] = await myRecords(user);
  return new Map([
    ...enrolled.map((s) => [s.id, "Enrolled"]),
    ...waitlist.map((w) => [w.section_id, `Waitlisted, position ${w.position}`]),
  ]);
}

// The catalog's control for a section the student holds no place in: a button that says what
// it will do (logic.js enrollAction), or the reason there is none.
function enrollControl(user, s, how) {
  const { button, reason } = enrollAction(s, how);
  if (!button) return h("span", { class: "reason" }, reason);
  const control = enrollButton(user, s);
  sayEnroll(control, button, s);
  return control;
}

// The enroll button's words, and its accessible name made of them and the section (logic.js
// enrollName: "Join waitlist (4 of 15) for CPSC 101-01"), changed together.
function sayEnroll(control, words, s) {
  control.textContent = words;
  control.setAttribute("aria-label", enrollName(words, label(s)));
}

// The live counts' turn (catalog poll): the control brought up to date in place; replaced only
// when it changes kind (a button becomes a reason) and focus is not on it.
function updateEnrollControl(cell, user, s, how) {
  const current = cell.firstElementChild;
  const { button, reason } = enrollAction(s, how);
  const isButton = current && current.tagName === "BUTTON" && current.classList.contains("enroll");
  const isReason = current && current.classList.contains("reason");
  if (!isButton && !isReason) return;
  if (button && isButton) {
    if (current.getAttribute("aria-busy") !== "true" && current.textContent !== button) sayEnroll(current, button, s);
  } else if (reason && isReason) {
    if (current.textContent !== reason) current.textContent = reason;
  } else if (!cell.contains(document.activeElement)) {
    current.replaceWith(enrollControl(user, s, how));
  }
}

function enrollButton(user, s) {
  return h(
    "button",
    {
      class: "enroll",
      onclick: async (event) => {
        let result;
        if (
          await act(event.currentTarget, async (onRetry) => {
            result = await api.enroll(`/users/${user.id}/enrollments`, {
              method: "POST",
              json: { section_id: s.id },
              onRetry,
            });
            remember("sections", await api.enroll(`/sections/${s.id}`)); // its live counts
          })
        ) {
          await render();
          notify(
            result.status === "enrolled"
              ? `Enrolled in ${label(s)}.`
              : `Waitlisted for ${label(s)}, position ${result.position}.`,
          );
        }
      },
    },
    "Enroll",
  );
}

// A seat offer (a section in `offer` waitlist mode holds a freed seat for the student first in
// line): accept (enrolled) or decline (off the waitlist) before its deadline.
function offerRow(user, offer) {
  const name = label(offer); // an offer names its section as a section does
  const answer = (verb, done) =>
    h(
      "button",
      {
        class: verb === "decline" ? "danger" : undefined,
        "aria-label": `${verb === "accept" ? "Accept" : "Decline"} the seat in ${name}`,
        onclick: async (event) => {
          const path = `/users/${user.id}/offers/${offer.id}/${verb}`;
          if (await act(event.currentTarget, (onRetry) => api.enroll(path, { method: "POST", onRetry }))) {
            await attempt(render);
            notify(done);
          }
        },
      },
      verb === "accept" ? "Accept" : "Decline",
    );
  return h(
    "tr",
    {},
    h("th", { scope: "row" }, name),
    h("td", {}, h("time", { datetime: offer.expires_at }, when(offer.expires_at))),
    h(
      "td",
      {},
      answer("accept", `Enrolled in ${name}.`),
      answer("decline", `Declined the seat in ${name}: you left its waitlist.`),
    ),
  );
}

async function scheduleView(user) {
  const [[enrolled, waitlist], offers] = await Promise.all([
    myRecords(user),
    api.enroll(`/users/${user.id}/offers?status=open&limit=100`),
  ]);
  const waited = await Promise.all(waitlist.map((w) => api.enroll(`/sections/${w.section_id}`)));
  const classes = enrolled.map((s) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, label(s)),
      h("td", {}, s.course_title),
      h("td", {}, meetingTimes(s)),
      h("td", { class: "num" }, s.credits),
      h(
        "td",
        {},
        deleteButton({
          text: "Drop",
          name: `Drop ${label(s)}`,
          question: `Drop ${label(s)} ${s.course_title}?`,
          yes: "Drop",
          path: `/users/${user.id}/enrollments/${s.id}`,
          done: `Dropped ${label(s)}.`,
        }),
        switchButton(user, s),
      ),
    ),
  );
  const waits = waitlist.map((w, i) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, label(waited[i])),
      h("td", {}, waited[i].course_title),
      h(
        "td",
        { class: "num" },
        offers.some((o) => o.section_id === w.section_id)
          ? `Position ${w.position}: a seat is held for you`
          : `Position ${w.position}`,
        // Passed over when a seat came free (a hold, say): why, in plain words (logic.js).
        w.passed_over
          ? h("p", { class: "passed-over" }, passedOverReason(w.passed_over, when(w.passed_over.at)))
          : null,
      ),
      h(
        "td",
        {},
        deleteButton({
          text: "Leave waitlist",
          name: `Leave waitlist for ${label(waited[i])}`,
          question: `Leave the waitlist of ${label(waited[i])}? You lose your place.`,
          yes: "Leave waitlist",
          path: `/users/${user.id}/waitlist/${w.section_id}`,
          done: `Left the waitlist of ${label(waited[i])}.`,
        }),
      ),
    ),
  );
  const credits = enrolled.reduce((sum, s) => sum + s.credits, 0);
  const offered = offers.length
    ? [
        h("h3", {}, "Seats held for you"),
        table(
          `Seat offers: ${plural(offers.length, "seat is", "seats are")} held for you; accept before the deadline or it goes to the next student`,
          ["Section", "Accept by", ""],
          offers.map((o) => offerRow(user, o)),
          "",
        ),
      ]
    : [];
  return [
    heading("My schedule"),
    ...offered,
    table(
      `Enrolled: ${plural(enrolled.length, "section", "sections")}, ${plural(credits, "credit", "credits")}`,
      ["Section", "Title", "Meets", "Credits", ""],
      classes,
      "You are not enrolled in any section.",
    ),
    ...weekGrid(enrolled),
    h("h3", {}, "My waitlists"),
    table(
      "Waitlists",
      ["Section", "Title", "Place", ""],
      waits,
      "You are not on any waitlist.",
    ),
    h("div", { id: "switch" }),
  ];
}

// The week of the sections held (logic.js scheduleGrid): an hour a row, Monday to Friday.
function weekGrid(enrolled) {
  if (!enrolled.length) return [];
  const grid = scheduleGrid(enrolled.map((s) => ({ label: label(s), meetings: s.meetings })));
  const rows = grid.rows.map((r) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, `${r.from}–${r.to}`),
      r.cells.map((cell) =>
        h("td", {}, cell.map((m) => h("span", { class: "meeting" }, `${m.label} ${m.start}–${m.end}`))),
      ),
    ),
  );
  const days = WEEKDAYS.map(([, name]) => name);
  const apart = grid.unplaced.length && grid.rows.length
    ? h("p", {}, `Not on the grid (no weekday meeting times): ${grid.unplaced.map((s) => s.label).join(", ")}.`)
    : null;
  const drawn = table("Your sections' meetings, an hour a row", ["Time", ...days], rows, "None of your sections has weekday meeting times.");
  drawn.querySelector("table")?.classList.add("grid");
  return [h("h3", {}, "My week"), drawn, apart];
}

// "Switch section": a swap (POST /users/{id}/swaps), the seat in `s` given up only if the
// section picked takes the student; a refusal is the API's sentence, and nothing has changed.
function switchButton(user, s) {
  return h(
    "button",
    {
      "aria-label": `Switch ${label(s)} to another section`,
      onclick: () =>
        attempt(async () => {
          const others = (await api.enroll(`/sections?course_id=${s.course_id}&limit=1000`))
            .filter((o) => o.id !== s.id);
          $("#switch").replaceChildren(switchPanel(user, s, others));
          $("#switch-title").focus();
        }),
    },
    "Switch section",
  );
}

function switchPanel(user, s, others) {
  const title = h("h3", { id: "switch-title", tabindex: "-1" }, `Switch ${label(s)} to`);
  if (!others.length) {
    return h("section", { class: "card" }, title, h("p", {}, `${s.course_code} has no other section.`));
  }
  const choice = h(
    "select",
    { name: "add_section_id" },
    others.map((o) =>
      h("option", { value: o.id }, `${label(o)}: ${plural(o.seats_available, "seat", "seats")} left`),
    ),
  );
  const waitlistOk = h("input", { type: "checkbox", name: "waitlist_ok" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "switch-title" },
    title,
    field("Section", choice),
    field("If it is full, join its waitlist (your seat is given up)", waitlistOk),
    h("button", { type: "submit" }, "Switch"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const picked = others.find((o) => o.id === Number(choice.value));
    let result;
    const swapped = await act(event.submitter || form.querySelector("button"), async (onRetry) => {
      result = await api.enroll(`/users/${user.id}/swaps`, {
        method: "POST",
        json: { drop_section_id: s.id, add_section_id: picked.id, waitlist_ok: waitlistOk.checked },
        onRetry,
      });
    });
    if (!swapped) return;
    await attempt(render);
    notify(
      result.added.status === "enrolled"
        ? `Switched from ${label(s)} to ${label(picked)}.`
        : `Switched from ${label(s)} to the waitlist of ${label(picked)}, position ${result.added.position}.`,
    );
  });
  return form;
}

// --- instructor -------------------------------------------------------------------------------

async function teachingView(user) {
  const sections = await api.enroll(`/users/${user.id}/sections?type=instructing&limit=1000`);
  const detail = h("div", { id: "roster" });
  const rows = sections.map((s) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, label(s)),
      h("td", {}, s.course_title),
      h("td", { class: "num" }, `${s.enrolled} of ${s.capacity}`),
      h("td", { class: "num" }, s.waitlisted),
      h(
        "td",
        {},
        h(
          "button",
          {
            "aria-label": `Roster of ${label(s)}`,
            onclick: () => attempt(async () => detail.replaceChildren(...(await roster(s)))),
          },
          "Roster",
        ),
      ),
    ),
  );
  return [
    heading("My sections"),
    table("Sections I teach", ["Section", "Title", "Enrolled", "Waitlisted", ""], rows,
      "You teach no section."),
    detail,
  ];
}

async function roster(s) {
  const [enrolled, waitlist] = await Promise.all([
    api.enroll(`/sections/${s.id}/enrollments?status=enrolled&limit=1000`),
    api.enroll(`/sections/${s.id}/waitlist?limit=1000`),
  ]);
  // Names and email addresses: an instructor may read the record of a student on their roster
  // or waitlist, the address with it (null: the auth service could not be asked just now).
  const [people, waiters] = await Promise.all([
    Promise.all(enrolled.map((e) => api.enroll(`/users/${e.user_id}`))),
    Promise.all(waitlist.map((w) => api.enroll(`/users/${w.user_id}`))),
  ]);
  const again = async () => {
    const fresh = await api.enroll(`/sections/${s.id}`);
    $("#roster").replaceChildren(...(await roster(fresh)));
  };
  const students = enrolled.map((e, i) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, `${people[i].first_name} ${people[i].last_name}`),
      h("td", {}, people[i].username),
      h("td", { class: "email" }, emailOf(people[i])),
      h(
        "td",
        {},
        deleteButton({
          text: "Drop",
          name: `Drop ${people[i].username} from ${label(s)}`,
          question: `Drop ${people[i].first_name} ${people[i].last_name} from ${label(s)}?`,
          yes: "Drop student",
          path: `/sections/${s.id}/enrollments/${e.user_id}`,
          done: `Dropped ${people[i].username} from ${label(s)}.`,
          redraw: again,
        }),
      ),
    ),
  );
  const waiting = waitlist.map((w, i) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, w.position),
      h("td", {}, `${waiters[i].first_name} ${waiters[i].last_name}`),
      h("td", {}, w.username),
      h("td", { class: "email" }, emailOf(waiters[i])),
    ),
  );
  const everyone = [
    ...people.map((p) => ({ ...p, status: "enrolled", position: null })),
    ...waiters.map((p, i) => ({ ...p, status: "waitlisted", position: waitlist[i].position })),
  ];
  return [
    h("h3", {}, `${label(s)} ${s.course_title}`),
    csvLink(s, everyone),
    table(`Roster of ${label(s)}`, ["Student", "Username", "Email", ""], students, "No one is enrolled."),
    table(`Waitlist of ${label(s)}`, ["Position", "Student", "Username", "Email"], waiting, "No one is waiting."),
    permitForm(s, everyone, again),
  ];
}

const emailOf = (person) =>
  person.email ? h("a", { href: `mailto:${person.email}` }, person.email) : "not known just now";

// The roster and waitlist as a CSV file (logic.js rosterCsv), made in the page: a download link
// to a Blob, its address let go when the next roster takes its place.
let rosterUrl = null;
function csvLink(s, everyone) {
  if (rosterUrl) URL.revokeObjectURL(rosterUrl);
  rosterUrl = URL.createObjectURL(new Blob([rosterCsv(label(s), everyone)], { type: "text/csv" }));
  const name = rosterFilename(label(s));
  return h(
    "p",
    {},
    h("a", { href: rosterUrl, download: name, id: "roster-csv" }, `Download the roster as CSV (${name})`),
  );
}

// What a permit can waive (POST /sections/{id}/permits), in the words a student would use.
const WAIVERS = [
  ["capacity", "Capacity: a seat past the section's capacity, ahead of its waitlist"],
  ["prerequisite", "Prerequisites: the course's prerequisites"],
  ["time_conflict", "Time conflict: a clash with another section the student holds"],
  ["credit_limit", "Credit limit: more credits than the student's limit"],
  ["window", "Registration window: enrolling before or after their window"],
];

// A permit for a student on the roster or waitlist: the instructor picks what it waives.
function permitForm(s, everyone, again) {
  if (!everyone.length) return null;
  const who = h(
    "select",
    { name: "user_id" },
    everyone.map((p) =>
      h(
        "option",
        { value: p.id },
        `${p.first_name} ${p.last_name} (${p.username}, ${p.status === "enrolled" ? "enrolled" : `waitlisted ${p.position}`})`,
      ),
    ),
  );
  const boxes = WAIVERS.map(([value]) => h("input", { type: "checkbox", name: "waives", value }));
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "permit-title" },
    h("h3", { id: "permit-title" }, `Grant a permit for ${label(s)}`),
    field("Student", who),
    h(
      "fieldset",
      { class: "checks" },
      h("legend", {}, "It waives"),
      boxes.map((box, i) => field(WAIVERS[i][1], box)),
    ),
    h("button", { type: "submit" }, "Grant permit"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const waives = boxes.filter((b) => b.checked).map((b) => b.value);
    const person = everyone.find((p) => p.id === Number(who.value));
    const grant = (onRetry) =>
      api.enroll(`/sections/${s.id}/permits`, {
        method: "POST",
        json: { user_id: person.id, waives },
        onRetry,
      });
    if (await act(event.submitter || form.querySelector("button[type=submit]"), withFieldErrors(form, grant))) {
      await attempt(again);
      notify(`Permit granted to ${person.username} for ${label(s)}: it waives ${waives.join(", ")}.`);
    }
  });
  return form;
}

// --- registrar --------------------------------------------------------------------------------

async function sectionsAdminView(user) {
  const [catalog, listed, users] = await Promise.all([
    catalogView(user, true),
    api.enroll("/courses?limit=1000"),
    api.enroll("/users?limit=1000"),
  ]);
  const courses = withRecent("courses", listed, () => true, (a, b) => a.code.localeCompare(b.code));
  instructors = users.filter((u) => u.roles.includes("instructor"));
  return [
    ...catalog,
    h("div", { id: "manage" }),
    h("div", { class: "forms" }, newCourseForm(courses), newSectionForm(courses)),
  ];
}
let instructors = [];

// The instructors to choose from; "No instructor" only where none is a choice (a new section:
// the API does not take a section's instructor away).
function instructorSelect(selected, { allowNone = false } = {}) {
  return h(
    "select",
    { name: "instructor_id" },
    allowNone && h("option", { value: "" }, "No instructor"),
    instructors.map((u) =>
      h(
        "option",
        { value: u.id, selected: u.id === selected },
        `${u.first_name} ${u.last_name} (${u.username})`,
      ),
    ),
  );
}

function manageButton(s) {
  return h(
    "button",
    {
      "aria-label": `Manage ${label(s)}`,
      onclick: () => {
        $("#manage").replaceChildren(managePanel(s));
        $("#manage-title").focus();
      },
    },
    "Manage",
  );
}

function managePanel(s) {
  const capacity = h("input", { type: "number", name: "capacity", value: s.capacity, min: "0" });
  const instructor = instructorSelect(s.instructor_id);
  const change = async (control, body, done) => {
    const patch = (onRetry) =>
      api.enroll(`/sections/${s.id}`, { method: "PATCH", json: body, onRetry });
    const ok = await act(control, patch);
    if (ok) {
      const fresh = await api.enroll(`/sections/${s.id}`);
      remember("sections", fresh);
      await render();
      $("#manage").replaceChildren(managePanel(fresh));
      notify(done);
    }
  };
  // One labelled control and its button, submitting one change.
  const oneField = (text, input, button, body, done) => {
    const form = h("form", {}, field(text, input), h("button", { type: "submit" }, button));
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      change(event.submitter || form.querySelector("button"), body(), done());
    });
    return form;
  };
  const capacityForm = oneField(
    "Capacity", capacity, "Change capacity",
    () => ({ capacity: Number(capacity.value) }),
    () => `${label(s)} now has ${capacity.value} seats.`,
  );
  const instructorForm = oneField(
    "Instructor", instructor, "Assign instructor",
    () => ({ instructor_id: Number(instructor.value) }),
    () => `Instructor of ${label(s)} changed.`,
  );
  const mode = h(
    "select",
    { name: "waitlist_mode" },
    h("option", { value: "auto", selected: s.waitlist_mode === "auto" }, "Enroll the next in line"),
    h("option", { value: "offer", selected: s.waitlist_mode === "offer" }, "Offer the seat, to claim"),
  );
  const hours = h("input", {
    type: "number",
    name: "claim_hours",
    min: "0.01",
    max: "336",
    step: "any",
    value: String(Math.round((s.claim_seconds / 3600) * 100) / 100),
  });
  const modeForm = h(
    "form",
    {},
    field("When a seat comes free", mode),
    field("Hours to claim an offered seat", hours),
    h("button", { type: "submit" }, "Set waitlist mode"),
  );
  modeForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const claim = Math.round(Number(hours.value) * 3600);
    change(
      event.submitter || modeForm.querySelector("button"),
      { waitlist_mode: mode.value, claim_seconds: claim },
      mode.value === "offer"
        ? `${label(s)} now offers a freed seat to the next in line, to claim within ${hours.value} h.`
        : `${label(s)} now enrolls the next in line when a seat comes free.`,
    );
  });
  const freeze = h(
    "button",
    {
      onclick: (event) =>
        change(
          event.currentTarget,
          { freeze: !s.frozen },
          s.frozen ? `${label(s)} is open again.` : `${label(s)} is frozen: no one is promoted.`,
        ),
    },
    s.frozen ? `Unfreeze ${label(s)}` : `Freeze ${label(s)}`,
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "manage-title" },
    h("h3", { id: "manage-title", tabindex: "-1" }, `Manage ${label(s)} ${s.course_title}`),
    h(
      "p",
      {},
      `${s.enrolled} enrolled, ${s.offered} held by offers, ${s.waitlisted} waitlisted, ${s.frozen ? "frozen" : "open"}.`,
    ),
    capacityForm,
    instructorForm,
    modeForm,
    freeze,
  );
}

function newCourseForm(courses) {
  const departments = new Map(courses.map((c) => [c.department_id, c.department_code]));
  const department = h(
    "select",
    { name: "department_id" },
    [...departments].map(([id, code]) => h("option", { value: id }, code)),
  );
  const code = h("input", { name: "code", placeholder: "CPSC 462" });
  const title = h("input", { name: "title" });
  const credits = h("input", { name: "credits", type: "number", value: "3", min: "0" });
  return cardForm("new-course", "New course", "Create course", [
    ["Department", department], ["Code", code], ["Title", title], ["Credits", credits],
  ], async (onRetry) => {
    const body = {
      department_id: Number(department.value),
      code: code.value.trim(),
      title: title.value.trim(),
      credits: Number(credits.value),
    };
    const course = await api.enroll("/courses", { method: "POST", json: body, onRetry });
    remember("courses", course);
    return `Created ${course.code} ${course.title}.`;
  });
}

// A form in a card: labelled fields and a submit button; `submit(onRetry)` does the work (see act)
// and returns the notice to show once the view is drawn again (its refusal is shown instead).

function newSectionForm(courses) {
  const course = h(
    "select",
    { name: "course_id" },
    courses.map((c) => h("option", { value: c.id }, `${c.code} ${c.title}`)),
  );
  const number = h("input", { name: "section_number", type: "number", min: "1", value: "1" });
  const capacity = h("input", { name: "capacity", type: "number", min: "0", value: "30" });
  const waitlist = h("input", { name: "waitlist_capacity", type: "number", min: "0", value: "15" });
  const instructor = instructorSelect(null, { allowNone: true });
  const room = h("input", { name: "room" });
  return cardForm("new-section", "New section", "Create section", [
    ["Course", course], ["Section number", number], ["Capacity", capacity],
    ["Waitlist capacity", waitlist], ["Instructor", instructor], ["Room", room],
  ], async (onRetry) => {
    const body = {
      course_id: Number(course.value),
      section_number: Number(number.value),
      capacity: Number(capacity.value),
      waitlist_capacity: Number(waitlist.value),
      room: room.value.trim(),
    };
    if (instructor.value) body.instructor_id = Number(instructor.value);
    const made = await api.enroll("/sections", { method: "POST", json: body, onRetry });
    remember("sections", made);
    return `Created ${label(made)}.`;
  });
}

const ACTIONS = [
  "course.create", "section.create", "section.update", "section.delete", "enrollment.enroll",
  "enrollment.drop", "enrollment.administrative_drop", "enrollment.swap", "waitlist.leave",
  "waitlist.skip", "offer.accept", "offer.decline", "offer.expire",
  "hold.place", "hold.lift", "permit.grant", "permit.revoke", "course.prerequisites",
  "completed.import", "user.credit_limit", "user.class_level", "term.create", "term.update",
  "window.create", "window.delete",
];

const ACCOUNT_ACTIONS = [
  "account.create", "account.roles", "account.names", "account.email", "account.disable",
  "account.enable", "account.password",
];

// One audit trail, newest first, with its filters and "Older entries": the enrollment service's
// (`get` = api.enroll) or the auth service's account changes (api.auth); both page alike.
async function trail({ title, id, get, filters, actions, columns, cells }) {
  const inputs = Object.fromEntries(
    filters.map((name) => [name, h("input", { name, inputmode: "numeric" })]),
  );
  inputs.action = h(
    "select",
    { name: "action" },
    h("option", { value: "" }, "Any action"),
    actions.map((a) => h("option", { value: a }, a)),
  );
  const results = h("div", { id });
  const more = h("button", { hidden: true }, "Older entries");
  let entries = [];
  const query = (after) => {
    const params = new URLSearchParams({ limit: "50" });
    for (const [name, input] of Object.entries(inputs)) {
      if (input.value.trim()) params.set(name, input.value.trim());
    }
    if (after) params.set("after", after);
    return `/audit?${params}`;
  };
  const show = () => {
    const rows = entries.map((e) =>
      h(
        "tr",
        {},
        h("td", {}, e.at.replace("T", " ").slice(0, 19)),
        h("td", {}, `${e.actor_id} (${e.actor_role})`),
        h("td", {}, e.action),
        ...cells(e),
        h("td", { class: "details" }, JSON.stringify(e.details)),
      ),
    );
    results.replaceChildren(
      table(`${title}, newest first`, ["When (UTC)", "By", "Action", ...columns, "Details"],
        rows, "No entry matches these filters."),
    );
  };
  const search = async () => {
    entries = await get(query());
    more.hidden = entries.length < 50;
    show();
  };
  more.addEventListener("click", () =>
    attempt(async () => {
      const page = await get(query(entries[entries.length - 1].id));
      entries = entries.concat(page);
      more.hidden = page.length < 50;
      show();
    }),
  );
  const label = (name) => name.replace("_id", " id").replace(/^./, (c) => c.toUpperCase());
  const form = h(
    "form",
    { class: "filters", "aria-label": `${title} filters` },
    ...filters.map((name) => field(label(name), inputs[name])),
    field("Action", inputs.action),
    h("button", { type: "submit" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    clearMessages();
    attempt(search);
  });
  await attempt(search);
  return [h("h3", {}, title), form, results, more];
}

async function auditView() {
  const enrollment = await trail({
    title: "Catalog and enrollment",
    id: "audit-results",
    get: api.enroll,
    filters: ["actor_id", "user_id", "section_id"],
    actions: ACTIONS,
    columns: ["Section", "User"],
    cells: (e) => [
      h("td", { class: "num" }, e.section_id ?? "—"),
      h("td", { class: "num" }, e.user_id ?? "—"),
    ],
  });
  const accounts = await trail({
    title: "Account changes",
    id: "account-audit-results",
    get: api.auth,
    filters: ["actor_id", "user_id"],
    actions: ACCOUNT_ACTIONS,
    columns: ["Account"],
    cells: (e) => [h("td", { class: "num" }, e.user_id)],
  });
  return [heading("Audit trail"), ...enrollment, ...accounts];
}

// --- notifications (everyone) -----------------------------------------------------------------

const NOTIFICATIONS_PAGE = 50;
const UNREAD_SHOWN = 99; // "99+" past it

// The unread count beside "Notifications" in the nav, asked quietly (no "Still trying…": it is
// not what the person is waiting for) and left out if it cannot be had.
async function showUnread(user, link) {
  let unread;
  try {
    unread = await api.enroll(
      `/users/${user.id}/notifications?unread=true&limit=${UNREAD_SHOWN + 1}`,
      { onRetry: () => {} },
    );
  } catch {
    return;
  }
  const badge = link.querySelector(".badge");
  if (!unread.length) {
    badge.textContent = "";
    link.removeAttribute("aria-label");
    return;
  }
  const count = unread.length > UNREAD_SHOWN ? `${UNREAD_SHOWN}+` : String(unread.length);
  badge.textContent = count;
  link.setAttribute("aria-label", `Notifications, ${count} unread`);
}


async function notificationsView(user) {
  const results = h("div", { id: "notification-results" });
  const shown = [];
  const more = h("button", { type: "button" }, "Older notifications");
  const markAll = h("button", { type: "button" }, "Mark all as read");
  const draw = () => {
    const rows = shown.map((n) =>
      h(
        "tr",
        { class: n.read ? "read" : "unread" },
        h("td", {}, n.read ? "" : "New"),
        h("th", { scope: "row" }, n.subject),
        h("td", {}, n.body),
        h("td", {}, when(n.created_at)),
        h("td", {}, n.delivered ? "Emailed" : "Email pending"),
      ),
    );
    results.replaceChildren(
      table(
        "Your notifications, newest first",
        ["", "Subject", "Message", "When", "Email"],
        rows,
        "Nothing yet: what happens to your enrollments, waitlists and holds is told here and by email.",
      ),
    );
    markAll.hidden = !shown.some((n) => !n.read);
  };
  const load = async () => {
    const after = shown.length ? `&after=${shown[shown.length - 1].id}` : "";
    const page = await api.enroll(
      `/users/${user.id}/notifications?limit=${NOTIFICATIONS_PAGE}${after}`,
    );
    shown.push(...page);
    more.hidden = page.length < NOTIFICATIONS_PAGE;
    draw();
  };
  more.addEventListener("click", () => attempt(load));
  markAll.addEventListener("click", async () => {
    let answer;
    const marked = await act(markAll, async (onRetry) => {
      answer = await api.enroll(`/users/${user.id}/notifications`, {
        method: "PATCH",
        json: { read_up_to: shown[0].id },
        onRetry,
      });
    });
    if (marked) {
      await render();
      notify(`Marked ${plural(answer.marked, "notification", "notifications")} as read.`);
    }
  });
  await attempt(load);
  const parts = [heading("Notifications"), h("div", { class: "search" }, markAll), results, more];
  if (user.roles.includes("registrar")) parts.push(...(await undeliveredList()));
  return parts;
}

// The registrar's view of mail not delivered yet: what the mail server or an address refuses.
async function undeliveredList() {
  const pending = await api.enroll("/notifications/undelivered?limit=100");
  const rows = pending.map((e) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, e.subject),
      h("td", { class: "num" }, e.user_id),
      h("td", {}, when(e.created_at)),
      h("td", { class: "num" }, e.attempts),
      h("td", {}, e.last_error || "—"),
    ),
  );
  return [
    h("h3", { id: "undelivered" }, "Email not delivered yet"),
    table(
      "Oldest first",
      ["Subject", "User", "When", "Failed attempts", "Last error"],
      rows,
      "Every notification has been emailed.",
    ),
  ];
}

// --- the frame --------------------------------------------------------------------------------

const VIEWS = [
  { hash: "#catalog", title: "Catalog", role: "student", build: (u) => catalogView(u) },
  { hash: "#schedule", title: "My schedule", role: "student", build: scheduleView },
  { hash: "#teaching", title: "My sections", role: "instructor", build: teachingView },
  { hash: "#sections", title: "Sections", role: "registrar", build: sectionsAdminView },
  { hash: "#accounts", title: "Accounts", role: "registrar", build: accountsView },
  { hash: "#students", title: "Students", role: "registrar", build: studentsView },
  { hash: "#permits", title: "Permits", role: "registrar", build: permitsView },
  { hash: "#terms", title: "Terms", role: "registrar", build: termsView },
  { hash: "#records", title: "Records", role: "registrar", build: recordsView },
  { hash: "#audit", title: "Audit trail", role: "registrar", build: auditView },
  // Every role's: no `role` (tests/test_role_names.py holds the others to the real role names).
  { hash: "#notifications", title: "Notifications", everyone: true, build: notificationsView },
];

const homeOf = (roles) => (VIEWS.find((v) => roles.includes(v.role)) || VIEWS[0]).hash;

let rendering = 0;
async function render() {
  const turn = ++rendering;
  main().setAttribute("aria-busy", "true");
  const current = api.session();
  const nav = $("#nav");
  nav.replaceChildren();
  $("#who").textContent = "";
  $("#sign-out").hidden = !current;
  if (!current) {
    main().replaceChildren(...signInView());
    main().setAttribute("aria-busy", "false");
    return;
  }
  const { user } = current;
  $("#who").textContent = `${user.name} (${user.roles.join(", ")})`;
  const mine = VIEWS.filter((v) => v.everyone || user.roles.includes(v.role));
  const view = mine.find((v) => v.hash === location.hash) || mine[0];
  if (!view || (view.everyone && mine.length === 1)) {
    main().replaceChildren(h("p", {}, "Your account has no role this app serves."));
    main().setAttribute("aria-busy", "false");
    return;
  }
  nav.append(
    ...mine.map((v) =>
      h(
        "a",
        { href: v.hash, "aria-current": v === view ? "page" : undefined },
        v.title,
        // A space between the words and the count, so the visible text ("Notifications 2") is
        // in the link's name ("Notifications, 2 unread"; WCAG 2.5.3), not "Notifications2".
        v.build === notificationsView ? [" ", h("span", { class: "badge" })] : null,
      ),
    ),
  );
  const inbox = [...nav.children].find((a) => a.getAttribute("href") === "#notifications");
  if (inbox) showUnread(user, inbox);
  let content;
  try {
    content = await view.build(user);
  } catch (error) {
    complain(error);
    content = [heading(view.title)];
  }
  if (turn === rendering && api.session()) main().replaceChildren(...content);
  if (turn === rendering) {
    main().setAttribute("aria-busy", "false");
    doneTrying();
  }
}

async function start() {
  onRedraw(render);
  await api.loadConfig();
  api.onRetrying(showTrying);
  api.onSessionEnded((message) => {
    render();
    complain(message);
  });
  $("#sign-out").addEventListener("click", async () => {
    await api.signOut();
    history.replaceState(null, "", location.pathname); // no hashchange: it would clear the notice
    render();
    notify("You are signed out.");
  });
  window.addEventListener("hashchange", () => {
    clearMessages();
    render().then(() => $("#view-title") && $("#view-title").focus());
  });
  api.keepFresh();
  await render();
}

start();
