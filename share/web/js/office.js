// The registrar's office (issue 28): Students (find one; their holds, permits, class level,
// credit limit and completed courses; every open hold, and every lifted one), Permits (per section, granted with what
// they waive), Terms (deadlines and registration windows) and Records (prerequisites, the CSV
// import of completed courses). Each view is built anew after a change (ui.js cardForm and
// deleteButton draw the view again), so what the person picked (a student, a section, a term, a
// course) is kept here, in `picked`, and shown again.

import * as api from "./api.js";
import {
  CLASS_LEVELS,
  WAIVERS,
  audience,
  capital,
  courseIds,
  csvProblems,
  localToUtc,
  matchingUsers,
  oneUser,
  userIds,
  utcToLocal,
  waived,
} from "./office-logic.js";
import {
  attempt,
  cardForm,
  deleteButton,
  field,
  h,
  heading,
  label,
  plural,
  table,
  when,
} from "./ui.js";

const picked = { query: "", student: null, section: null, term: null, course: null, place: null };
const PAGE = 1000;
const HOLDS_PAGE = 50;

// Every row of a list the API pages (`path` with its query, without after/limit).
async function everyPage(path) {
  const all = [];
  for (;;) {
    const after = all.length ? `&after=${all[all.length - 1].id}` : "";
    const page = await api.enroll(`${path}${path.includes("?") ? "&" : "?"}limit=${PAGE}${after}`);
    all.push(...page);
    if (page.length < PAGE) return all;
  }
}

const students = async () => (await everyPage("/users")).filter((u) => u.roles.includes("student"));
// Someone the list of people does not hold: named by their id.
const unknownUser = (id) => ({ id, username: `user ${id}`, first_name: "User", last_name: String(id) });
const fullName = (u) => `${u.first_name} ${u.last_name}`;
const who = (u) => `${fullName(u)} (${u.username})`;
const moment = (at) => (at ? h("time", { datetime: at }, when(at)) : "—");
// When a hold was placed or lifted, and by whom (`byId`: everyone, staff too).
const doneBy = (at, userId, byId) => [moment(at), ` by ${fullName(byId.get(userId) || unknownUser(userId))}`];

// A date and time in the person's own time zone, sent as UTC (office-logic.js).
const dateInput = (name, value) =>
  h("input", { type: "datetime-local", name, step: "1", value: utcToLocal(value) });

// A refusal made here, before the API is asked, shown as the API's are: beside its field.
const refusedHere = (field, message) =>
  new api.ApiError(`${capital(message)}.`, 422, "validation_error", [{ field, message }]);

// A card form of the office: as ui.js cardForm, and the person's place is kept (`keepingPlace`).
function officeForm(id, ...rest) {
  const form = cardForm(id, ...rest);
  form.addEventListener("submit", () => (picked.place = id));
  return form;
}

// A view's content, drawn anew after a change made with an office form: once it is on the page,
// that form's button has the focus again, so a keyboard user goes on from where they were (the
// notice says what was done). Taken once: the next view drawn is drawn as usual.
function keepingPlace(content) {
  const place = picked.place;
  picked.place = null;
  const button = () => document.querySelector(`form[aria-labelledby="${place}"] button[type=submit]`);
  if (place) setTimeout(() => button()?.focus());
  return content;
}

function select(name, options, chosen) {
  return h(
    "select",
    { name },
    options.map(([value, text]) =>
      h("option", { value, selected: String(value) === String(chosen ?? "") }, text),
    ),
  );
}

// --- Students: holds, permits, class level, credit limit, completed courses -------------------

export async function studentsView() {
  const [everyone, sections] = await Promise.all([everyPage("/users"), everyPage("/sections")]);
  const people = everyone.filter((u) => u.roles.includes("student"));
  const byId = new Map(everyone.map((u) => [u.id, u])); // staff too: who placed and lifted holds
  const search = h("input", { type: "search", name: "student", value: picked.query });
  const results = h("div", { id: "student-results" });
  const panel = h("div", { id: "student" });
  const find = h(
    "form",
    { class: "search", role: "search", "aria-label": "Find a student" },
    field("Find a student (name, username or id)", search),
    h("button", { type: "submit" }, "Find"),
  );
  const show = () => {
    picked.query = search.value.trim();
    if (!picked.query) return results.replaceChildren();
    const { shown, more } = matchingUsers(people, picked.query);
    const rows = shown.map((u) =>
      h(
        "tr",
        {},
        h("th", { scope: "row" }, fullName(u)),
        h("td", {}, u.username),
        h("td", { class: "num" }, u.id),
        h("td", {}, u.class_level ? capital(u.class_level) : "—"),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              "aria-label": `Choose ${u.username}`,
              onclick: () =>
                attempt(async () => {
                  picked.student = u.id;
                  panel.replaceChildren(...(await studentPanel(u.id, sections, byId)));
                  document.getElementById("student-title").focus();
                }),
            },
            "Choose",
          ),
        ),
      ),
    );
    results.replaceChildren(
      table(
        `Students matching “${picked.query}”`,
        ["Student", "Username", "Id", "Class level", ""],
        rows,
        `No student matches “${picked.query}”.`,
      ),
      more ? h("p", {}, `${plural(more, "more match", "more matches")}: search more narrowly.`) : "",
    );
  };
  find.addEventListener("submit", (event) => {
    event.preventDefault();
    show();
  });
  show();
  if (picked.student) {
    panel.replaceChildren(...(await studentPanel(picked.student, sections, byId)));
  }
  const [open, lifted] = await Promise.all([holdList(byId, false), holdList(byId, true)]);
  return keepingPlace([heading("Students"), find, results, panel, ...open, ...lifted]);
}

async function studentPanel(userId, sections, byId) {
  const [u, holds, permits, completed] = await Promise.all([
    api.enroll(`/users/${userId}`),
    everyPage(`/users/${userId}/holds`),
    everyPage(`/users/${userId}/permits`),
    api.enroll(`/users/${userId}/completed-courses?limit=${PAGE}`),
  ]);
  const sectionOf = new Map(sections.map((s) => [s.id, s]));
  const holdRows = holds.map((hold) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, hold.reason),
      h("td", {}, doneBy(hold.placed_at, hold.placed_by, byId)),
      h("td", {}, hold.lifted_at ? ["Lifted ", doneBy(hold.lifted_at, hold.lifted_by, byId)] : "Open"),
      h("td", {}, hold.lifted_at ? "" : liftButton(u, hold)),
    ),
  );
  const permitRows = permits.map((p) => {
    const s = sectionOf.get(p.section_id);
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, s ? label(s) : `Section ${p.section_id}`),
      h("td", {}, waived(p.waives)),
      h("td", {}, moment(p.granted_at)),
      h("td", {}, p.revoked_at ? ["Revoked ", moment(p.revoked_at)] : "Active"),
      h("td", {}, p.revoked_at ? "" : revokeButton(p, s ? label(s) : `section ${p.section_id}`, u)),
    );
  });
  const completedRows = completed.map((c) =>
    h("tr", {}, h("th", { scope: "row" }, c.course_code), h("td", {}, c.term || "—"),
      h("td", {}, c.grade || "—")),
  );
  const reason = h("input", { name: "reason", autocomplete: "off" });
  const level = select(
    "class_level",
    [["", "None"], ...CLASS_LEVELS.map((l) => [l, capital(l)])],
    u.class_level,
  );
  const limit = h("input", {
    type: "number",
    name: "credit_limit",
    inputmode: "numeric",
    value: u.credit_limit ?? "",
  });
  return [
    h("h3", { id: "student-title", tabindex: "-1" }, `${who(u)}, student id ${u.id}`),
    h(
      "p",
      {},
      `Class level: ${u.class_level ? capital(u.class_level) : "none"}. Credit limit: ${
        u.credit_limit ?? "18 (the default)"
      }.`,
    ),
    table(`Holds of ${u.username}`, ["Reason", "Placed", "Status", ""], holdRows,
      `${u.username} has no hold.`),
    table(`Permits of ${u.username}`, ["Section", "Waives", "Granted", "Status", ""], permitRows,
      `${u.username} has no permit.`),
    table(`Completed courses of ${u.username}`, ["Course", "Term", "Grade"], completedRows,
      `${u.username} has no completed course on record.`),
    h(
      "div",
      { class: "forms" },
      officeForm("place-hold", `Place a hold on ${u.username}`, "Place hold", [["Reason", reason]],
        async (onRetry) => {
          const body = { reason: reason.value };
          await api.enroll(`/users/${u.id}/holds`, { method: "POST", json: body, onRetry });
          return `Placed a hold on ${u.username}: ${reason.value.trim()}.`;
        }),
      officeForm("class-level", `Class level of ${u.username}`, "Set class level",
        [["Class level", level]], async (onRetry) => {
          const body = { class_level: level.value || null };
          await api.enroll(`/users/${u.id}/class-level`, { method: "PUT", json: body, onRetry });
          return level.value
            ? `${u.username} is a ${level.value} now.`
            : `${u.username} has no class level now.`;
        }),
      officeForm("credit-limit", `Credit limit of ${u.username}`, "Set credit limit",
        [["Credits a term (empty: the default, 18)", limit]], async (onRetry) => {
          const value = limit.value.trim();
          const body = { credit_limit: value === "" ? null : Number(value) };
          await api.enroll(`/users/${u.id}/credit-limit`, { method: "PUT", json: body, onRetry });
          return value === ""
            ? `${u.username}'s credit limit is the default, 18, now.`
            : `${u.username} may hold ${plural(Number(value), "credit", "credits")} a term now.`;
        }),
    ),
  ];
}

function liftButton(u, hold) {
  return deleteButton({
    text: "Lift",
    name: `Lift the hold on ${u.username}: ${hold.reason}`,
    question: `Lift the hold “${hold.reason}” on ${who(u)}? They can enroll again.`,
    yes: "Lift hold",
    path: `/users/${u.id}/holds/${hold.id}`,
    done: `Lifted the hold on ${u.username}.`,
  });
}

function revokeButton(permit, sectionName, u) {
  return deleteButton({
    text: "Revoke",
    name: `Revoke permit ${permit.id} of ${u.username} for ${sectionName}`,
    question: `Revoke ${u.username}'s permit for ${sectionName} (${waived(permit.waives)})? A place it gave stays.`,
    yes: "Revoke permit",
    path: `/sections/${permit.section_id}/permits/${permit.id}`,
    done: `Revoked ${u.username}'s permit for ${sectionName}.`,
  });
}

// Every open hold (`lifted` false) or every lifted one, the latest placed first, a page at a
// time ("Older holds"): who placed each and when, and for a lifted one who lifted it and when.
async function holdList(byId, lifted) {
  const results = h("div", { id: lifted ? "lifted-holds" : "open-holds" });
  const more = h("button", { type: "button" }, lifted ? "Older lifted holds" : "Older holds");
  const shown = [];
  const draw = () => {
    const rows = shown.map((hold) => {
      const u = byId.get(hold.user_id) || unknownUser(hold.user_id);
      return h(
        "tr",
        {},
        h("th", { scope: "row" }, who(u)),
        h("td", {}, hold.reason),
        h("td", {}, doneBy(hold.placed_at, hold.placed_by, byId)),
        h("td", {}, lifted ? doneBy(hold.lifted_at, hold.lifted_by, byId) : liftButton(u, hold)),
      );
    });
    results.replaceChildren(
      lifted
        ? table("Lifted holds, the latest placed first", ["Student", "Reason", "Placed", "Lifted"],
          rows, "No hold has been lifted.")
        : table("Open holds, newest first", ["Student", "Reason", "Placed", ""], rows,
          "No student has an open hold."),
    );
  };
  const load = async () => {
    const after = shown.length ? `&after=${shown[shown.length - 1].id}` : "";
    const page = await api.enroll(`/holds?open=${!lifted}&limit=${HOLDS_PAGE}${after}`);
    shown.push(...page);
    more.hidden = page.length < HOLDS_PAGE;
    draw();
  };
  more.addEventListener("click", () => attempt(load));
  await load();
  return [h("h3", {}, lifted ? "Lifted holds" : "Open holds"), results, more];
}

// --- Permits: per section, granted with what they waive ----------------------------------------

export async function permitsView() {
  const [sections, people, terms] = await Promise.all([
    everyPage("/sections"),
    students(),
    everyPage("/terms"),
  ]);
  const byId = new Map(people.map((u) => [u.id, u]));
  const termOf = new Map(terms.map((t) => [t.id, t.code]));
  const named = (s) =>
    `${label(s)} ${s.course_title}${termOf.has(s.term_id) ? `, ${termOf.get(s.term_id)}` : ""}`;
  const options = sections.map((s) => [s.id, named(s)]);
  const chosen = select("section_id", options, picked.section);
  const panel = h("div", { id: "section-permits" });
  const pick = h(
    "form",
    { class: "search", "aria-label": "Show a section's permits" },
    field("Section", chosen),
    h("button", { type: "submit" }, "Show permits"),
  );
  const showSection = async (id) => {
    picked.section = id;
    const s = sections.find((x) => x.id === id);
    panel.replaceChildren(...(await sectionPermits(s, byId)));
  };
  pick.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(() => showSection(Number(chosen.value)));
  });
  if (picked.section && sections.some((s) => s.id === picked.section)) {
    await showSection(picked.section);
  }
  return keepingPlace([heading("Permits"), pick, panel, grantForm(sections, options, people)]);
}

async function sectionPermits(s, byId) {
  const permits = await everyPage(`/sections/${s.id}/permits`);
  const rows = permits.map((p) => {
    const u = byId.get(p.user_id) || unknownUser(p.user_id);
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, who(u)),
      h("td", {}, waived(p.waives)),
      h("td", {}, moment(p.granted_at)),
      h("td", {}, p.revoked_at ? ["Revoked ", moment(p.revoked_at)] : "Active"),
      h("td", {}, p.revoked_at ? "" : revokeButton(p, label(s), u)),
    );
  });
  return [
    h("h3", {}, `Permits of ${label(s)} ${s.course_title}`),
    h("p", {}, `${s.enrolled} of ${s.capacity} seats taken, ${s.waitlisted} waitlisted.`),
    table(`Permits of ${label(s)}`, ["Student", "Waives", "Granted", "Status", ""], rows,
      `No permit for ${label(s)}.`),
  ];
}

function grantForm(sections, options, people) {
  const section = select("section_id", options, picked.section);
  const student = h("input", { name: "user_id", autocomplete: "off" });
  const boxes = WAIVERS.map(([value]) => h("input", { type: "checkbox", name: "waives", value }));
  const waives = h(
    "fieldset",
    { class: "checks" },
    h("legend", {}, "Waives"),
    WAIVERS.map(([, text], i) => field(text, boxes[i])),
  );
  return officeForm(
    "grant-permit",
    "Grant a permit",
    "Grant permit",
    [["Section", section], ["Student (username or id)", student], waives],
    async (onRetry) => {
      const u = oneUser(student.value, people);
      if (!u) throw refusedHere("user_id", `no student has the username or id “${student.value.trim()}”`);
      const s = sections.find((x) => x.id === Number(section.value));
      const body = { user_id: u.id, waives: boxes.filter((b) => b.checked).map((b) => b.value) };
      await api.enroll(`/sections/${s.id}/permits`, { method: "POST", json: body, onRetry });
      picked.section = s.id;
      return `Granted ${u.username} a permit for ${label(s)}: waives ${waived(body.waives)}.`;
    },
  );
}

// --- Terms: deadlines and registration windows ------------------------------------------------

export async function termsView() {
  const [terms, people] = await Promise.all([everyPage("/terms"), everyPage("/users")]);
  const byId = new Map(people.map((u) => [u.id, u]));
  const panel = h("div", { id: "term" });
  const showTerm = async (term) => {
    picked.term = term.id;
    panel.replaceChildren(...(await termPanel(term, people, byId)));
  };
  const rows = terms.map((t) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, t.code),
      h("td", {}, t.name || "—"),
      h("td", {}, moment(t.add_deadline)),
      h("td", {}, moment(t.drop_deadline)),
      h(
        "td",
        {},
        h(
          "button",
          {
            type: "button",
            "aria-label": `Manage term ${t.code}`,
            onclick: () =>
              attempt(async () => {
                await showTerm(t);
                document.getElementById("term-title").focus();
              }),
          },
          "Manage",
        ),
      ),
    ),
  );
  const chosen = terms.find((t) => t.id === picked.term);
  if (chosen) await showTerm(chosen);
  const code = h("input", { name: "code", placeholder: "2027-FA", autocomplete: "off" });
  const name = h("input", { name: "name", autocomplete: "off" });
  const add = dateInput("add_deadline");
  const drop = dateInput("drop_deadline");
  return keepingPlace([
    heading("Terms"),
    table("Terms", ["Code", "Name", "Add deadline", "Drop deadline", ""], rows, "There are no terms yet."),
    panel,
    officeForm("new-term", "New term", "Create term",
      [["Code", code], ["Name", name], ["Add deadline", add], ["Drop deadline", drop]],
      async (onRetry) => {
        const body = { code: code.value.trim(), name: name.value.trim() };
        if (add.value) body.add_deadline = localToUtc(add.value);
        if (drop.value) body.drop_deadline = localToUtc(drop.value);
        const term = await api.enroll("/terms", { method: "POST", json: body, onRetry });
        picked.term = term.id;
        return `Created term ${term.code}.`;
      }),
  ]);
}

async function termPanel(term, people, byId) {
  const windows = await everyPage(`/terms/${term.id}/windows`);
  const rows = windows.map((w) =>
    h(
      "tr",
      {},
      h("th", { scope: "row" }, moment(w.opens_at)),
      h("td", {}, moment(w.closes_at)),
      h("td", {}, audience(w, byId)),
      h(
        "td",
        {},
        deleteButton({
          text: "Delete",
          name: `Delete window ${w.id} of ${term.code}`,
          question: `Delete the registration window of ${term.code} opening ${when(w.opens_at)} for ${audience(w, byId)}?`,
          yes: "Delete window",
          path: `/terms/${term.id}/windows/${w.id}`,
          done: `Deleted a registration window of ${term.code}.`,
        }),
      ),
    ),
  );
  const name = h("input", { name: "name", value: term.name, autocomplete: "off" });
  const add = dateInput("add_deadline", term.add_deadline);
  const drop = dateInput("drop_deadline", term.drop_deadline);
  const opens = dateInput("opens_at");
  const closes = dateInput("closes_at");
  const level = select("class_level", [
    ["", "Any (everyone, or the students listed)"],
    ...CLASS_LEVELS.map((l) => [l, capital(l)]),
  ]);
  const listed = h("textarea", { name: "user_ids", rows: "2" });
  return [
    h("h3", { id: "term-title", tabindex: "-1" }, `Term ${term.code}${term.name ? `: ${term.name}` : ""}`),
    table(`Registration windows of ${term.code}`, ["Opens", "Closes", "For", ""], rows,
      `${term.code} has no registration window: any student may add its sections until the add deadline.`),
    h(
      "div",
      { class: "forms" },
      officeForm("edit-term", `Change ${term.code}`, "Save term",
        [["Name", name], ["Add deadline (empty: none)", add], ["Drop deadline (empty: none)", drop]],
        async (onRetry) => {
          const body = {
            name: name.value.trim(),
            add_deadline: localToUtc(add.value),
            drop_deadline: localToUtc(drop.value),
          };
          await api.enroll(`/terms/${term.id}`, { method: "PATCH", json: body, onRetry });
          return `Saved term ${term.code}.`;
        }),
      officeForm("new-window", `New registration window for ${term.code}`, "Create window",
        [["Opens", opens], ["Closes", closes], ["Class level", level],
          ["Or these students (usernames or ids)", listed]],
        async (onRetry) => {
          const { ids, unknown } = userIds(listed.value, people);
          if (unknown.length) {
            throw refusedHere("user_ids", `no user has the username or id ${unknown.join(", ")}`);
          }
          const body = { opens_at: localToUtc(opens.value), closes_at: localToUtc(closes.value) };
          if (level.value) body.class_level = level.value;
          if (ids.length) body.user_ids = ids;
          const made = await api.enroll(`/terms/${term.id}/windows`, {
            method: "POST",
            json: body,
            onRetry,
          });
          return `Created a registration window of ${term.code} for ${audience(made, byId)}, opening ${when(made.opens_at)}.`;
        }),
    ),
  ];
}

// --- Records: prerequisites per course, the CSV import of completed courses --------------------

export async function recordsView() {
  const courses = await everyPage("/courses");
  const chosen = select("course_id", courses.map((c) => [c.id, `${c.code} ${c.title}`]), picked.course);
  const panel = h("div", { id: "course-prerequisites" });
  const showCourse = async (id) => {
    picked.course = id;
    const course = courses.find((c) => c.id === id);
    panel.replaceChildren(await prerequisitesForm(course, courses));
  };
  const pick = h(
    "form",
    { class: "search", "aria-label": "Show a course's prerequisites" },
    field("Course", chosen),
    h("button", { type: "submit" }, "Show prerequisites"),
  );
  pick.addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(async () => {
      await showCourse(Number(chosen.value));
      document.getElementById("set-prerequisites").focus();
    });
  });
  if (picked.course && courses.some((c) => c.id === picked.course)) await showCourse(picked.course);
  return keepingPlace([
    heading("Records"),
    h("h3", {}, "Prerequisites"),
    pick,
    panel,
    h("h3", {}, "Completed courses"),
    importForm(),
  ]);
}

async function prerequisitesForm(course, courses) {
  const now = await api.enroll(`/courses/${course.id}/prerequisites`);
  const codes = h("input", {
    name: "course_ids",
    autocomplete: "off",
    value: now.map((c) => c.code).join(", "),
  });
  const form = officeForm(
    "set-prerequisites",
    `Prerequisites of ${course.code}`,
    "Save prerequisites",
    [["Course codes, separated by commas (empty: none)", codes]],
    async (onRetry) => {
      const { ids, unknown } = courseIds(codes.value, courses);
      if (unknown.length) throw refusedHere("course_ids", `no course has the code ${unknown.join(", ")}`);
      const body = { course_ids: ids };
      const set = await api.enroll(`/courses/${course.id}/prerequisites`, {
        method: "PUT",
        json: body,
        onRetry,
      });
      return set.length
        ? `${course.code} now needs ${set.map((c) => c.code).join(", ")} completed first.`
        : `${course.code} has no prerequisite now.`;
    },
  );
  form.querySelector("h3").setAttribute("tabindex", "-1");
  form.insertBefore(
    h("p", {}, now.length ? `Now: ${now.map((c) => c.code).join(", ")}.` : "Now: none."),
    form.querySelector(".field"),
  );
  return form;
}

// The CSV of completed courses, from a file or pasted; the API's line-numbered refusal is shown
// as a list of its lines, beside the form (#problem says it in one sentence too).
function importForm() {
  const file = h("input", { type: "file", name: "file", accept: ".csv,text/csv" });
  const pasted = h("textarea", {
    name: "csv",
    rows: "5",
    spellcheck: "false",
    placeholder: "user_id,course_code,term,grade\n9,CPSC 131,2025-FA,A",
  });
  const problems = h("div", { id: "csv-problems" });
  const form = officeForm(
    "import-completed",
    "Import completed courses (CSV)",
    "Import",
    [
      h("p", {}, "The first line names the columns: user_id,course_code and optionally term and grade. Every row is imported, or none."),
      ["CSV file", file],
      ["Or paste the CSV", pasted],
    ],
    async (onRetry) => {
      problems.replaceChildren();
      const text = file.files.length ? await file.files[0].text() : pasted.value;
      let answer;
      try {
        answer = await api.enroll("/completed-courses", {
          method: "POST",
          text,
          contentType: "text/csv",
          onRetry,
        });
      } catch (error) {
        const lines = csvProblems(error.message);
        if (lines.length) {
          problems.replaceChildren(
            h("h4", { id: "csv-problems-title" }, "Nothing was imported: fix these lines"),
            h(
              "ul",
              { "aria-labelledby": "csv-problems-title" },
              lines.map((p) => h("li", {}, `Line ${p.line}: ${p.why}`)),
            ),
          );
        }
        throw error;
      }
      return `Imported ${plural(answer.imported, "row", "rows")} of completed courses.`;
    },
  );
  form.append(problems);
  return form;
}
