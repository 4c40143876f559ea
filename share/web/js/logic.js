// The web app's logic that needs no page: what an enroll button says (or why there is none),
// the weekly schedule grid, the roster as CSV, and the meeting times as words. Pure functions,
// imported by the views and by node's test runner (tests/web/logic.test.mjs) alike.

// The most waitlists a student may be on at once (app/enrollment/enrollments/service.py).
export const MAX_WAITLISTS = 3;

// The days of the schedule grid, Monday to Friday, in the API's letters (R is Thursday).
export const WEEKDAYS = [
  ["M", "Monday"],
  ["T", "Tuesday"],
  ["W", "Wednesday"],
  ["R", "Thursday"],
  ["F", "Friday"],
];
const DAY_NAMES = Object.fromEntries([...WEEKDAYS, ["S", "Saturday"], ["U", "Sunday"]]);

// What pressing a section's button in the catalog will do, as its words: `button` is the
// button's text ("Enroll", "Join waitlist (4 of 15)": the place the student would take of the
// waitlist's room), or null and `reason` says why there is none. `waitlists`: how many
// waitlists the student is on now; `capacityPermit`: whether they hold a permit for this
// section that waives its capacity (a seat past it, ahead of the waitlist).
export function enrollAction(section, { waitlists = 0, capacityPermit = false } = {}) {
  if (section.frozen) {
    return { button: null, reason: "Frozen by the registrar: not taking students now." };
  }
  if (capacityPermit) return { button: "Enroll (your permit)", reason: null };
  // A seat is given only when nobody waits (a seat held by an offer counts as taken).
  if (section.seats_available > 0 && section.waitlisted === 0) {
    return { button: "Enroll", reason: null };
  }
  if (section.waitlisted >= section.waitlist_capacity) {
    return {
      button: null,
      reason: `Full, and its waitlist is full (${section.waitlisted} of ${section.waitlist_capacity}).`,
    };
  }
  if (waitlists >= MAX_WAITLISTS) {
    return {
      button: null,
      reason: `Full; you are on ${waitlists} waitlists, the most allowed.`,
    };
  }
  return {
    button: `Join waitlist (${section.waitlisted + 1} of ${section.waitlist_capacity})`,
    reason: null,
  };
}

// The accessible name of a section's enroll button: its visible words first, then the section
// ("Join waitlist (4 of 15) for CPSC 101-01"), so what a person sees is what a screen reader says
// and what speech input takes (WCAG 2.5.3 Label in Name), and each row's button is told apart.
export function enrollName(button, sectionLabel) {
  return `${button} ${button.startsWith("Join") ? "for" : "in"} ${sectionLabel}`;
}

// "MW 16:00–17:15; F 09:00–11:45" from a section's meetings; its free-text schedule if it has
// none; "—" if neither.
export function meetingTimes(section) {
  const meetings = section.meetings || [];
  if (!meetings.length) return section.schedule || "—";
  return meetings.map((m) => `${m.days} ${m.start}–${m.end}`).join("; ");
}

// The days a meeting's letters name, in words: "MW" -> "Monday, Wednesday".
export const dayNames = (days) => [...days].map((d) => DAY_NAMES[d] || d).join(", ");

const minutes = (hhmm) => Number(hhmm.slice(0, 2)) * 60 + Number(hhmm.slice(3, 5));
const hhmm = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

// The weekly grid of `sections` (each with `label` and `meetings`): one row an hour, from the
// hour the earliest meeting starts to the hour the latest ends, one column a weekday; a cell
// lists every meeting that day overlapping that hour ({label, start, end}, in start order), so a
// time conflict shows as two in one cell. `unplaced`: the sections with no weekday meeting (no
// times given, or weekends only), listed apart so nothing held is left out.
export function scheduleGrid(sections) {
  const placed = [];
  const unplaced = [];
  for (const s of sections) {
    const weekday = (s.meetings || []).filter((m) => WEEKDAYS.some(([d]) => m.days.includes(d)));
    if (!weekday.length) unplaced.push(s);
    for (const m of weekday) placed.push({ label: s.label, start: m.start, end: m.end, days: m.days });
  }
  if (!placed.length) return { days: WEEKDAYS.map(([d]) => d), rows: [], unplaced };
  const first = Math.floor(Math.min(...placed.map((p) => minutes(p.start))) / 60);
  const last = Math.ceil(Math.max(...placed.map((p) => minutes(p.end))) / 60);
  const rows = [];
  for (let hour = first; hour < last; hour++) {
    const [from, to] = [hour * 60, hour * 60 + 60];
    const cells = WEEKDAYS.map(([day]) =>
      placed
        .filter((p) => p.days.includes(day) && minutes(p.start) < to && minutes(p.end) > from)
        .sort((a, b) => minutes(a.start) - minutes(b.start) || a.label.localeCompare(b.label))
        .map(({ label, start, end }) => ({ label, start, end })),
    );
    rows.push({ from: hhmm(from), to: hhmm(to), cells });
  }
  return { days: WEEKDAYS.map(([d]) => d), rows, unplaced };
}

// One CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, its quotes
// doubled. A field a spreadsheet would run as a formula (=, +, -, @, a tab or a carriage
// return first) is given a leading apostrophe, so a name typed as "=HYPERLINK(...)" stays text.
export function csvField(value) {
  let text = value === null || value === undefined ? "" : String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export const csvLine = (fields) => fields.map(csvField).join(",");

// A section's roster and waitlist as CSV: a header line, then the enrolled students, then the
// waitlist in order; lines end with CRLF (RFC 4180). `people`: {status, position, first_name,
// last_name, username, email} (email null: not known now, an empty field).
export const ROSTER_COLUMNS = [
  "Section", "Status", "Waitlist position", "Last name", "First name", "Username", "Email",
];

export function rosterCsv(sectionLabel, people) {
  const lines = [csvLine(ROSTER_COLUMNS)];
  const order = (p) => (p.status === "enrolled" ? 0 : 1);
  const sorted = [...people].sort(
    (a, b) =>
      order(a) - order(b) ||
      (a.position ?? 0) - (b.position ?? 0) ||
      a.last_name.localeCompare(b.last_name) ||
      a.first_name.localeCompare(b.first_name),
  );
  for (const p of sorted) {
    lines.push(
      csvLine([
        sectionLabel, p.status, p.position ?? "", p.last_name, p.first_name, p.username, p.email,
      ]),
    );
  }
  return lines.join("\r\n") + "\r\n";
}

// "CPSC 449-01" -> "CPSC-449-01-roster.csv": no spaces or path characters in a file name.
export const rosterFilename = (sectionLabel) =>
  `${sectionLabel.replace(/[^A-Za-z0-9_-]+/g, "-")}-roster.csv`;

// Why a seat that came free went to the next student in line rather than to this one, who keeps
// their place (the API's `passed_over` on a student's waitlist: the eligibility rule that refused
// them then, and its sentence), in plain words; `at`: when, as the person reads it. The rule's
// particulars (a hold's reason, the section that clashes, the credit limit, the courses missing)
// are taken from the API's sentence where it has them; the rule alone otherwise.
const PASSED_OVER = {
  hold: [
    /has a hold: (.*) \(hold \d+\)/,
    (m) => `you had a hold on your record${m ? `: ${m[1]}` : ""}. The registrar's office lifts holds`,
  ],
  prerequisite_missing: [
    /needs (.*) completed first/,
    (m) => `you had not completed ${m ? m[1] : "its prerequisites"}`,
  ],
  time_conflict: [
    /as section \d+ \(([^)]+)\)/,
    (m) => `it meets at the same time as ${m ? m[1] : "a section"}, which you hold`,
  ],
  credit_limit: [
    /over their limit of (\d+)/,
    (m) => `it would have taken you over your limit${m ? ` of ${m[1]} credits` : ""} for the term`,
  ],
  not_a_student: [/$^/, () => "your account is not a student's"],
};

export function passedOverReason(passed, at) {
  const rule = PASSED_OVER[passed.rule];
  const why = rule ? rule[1](passed.detail.match(rule[0])) : passed.detail;
  return `A seat came free on ${at} and went to the next student in line, because ${why}.` +
    " You keep your place.";
}
