// The registrar's office's logic, without a DOM (node's own test runner imports it: tests/web/):
// moments between a `datetime-local` input (the person's own time zone) and the API's UTC text,
// the CSV import's line-numbered refusal as a list, and the names a person types (usernames, ids,
// course codes) turned into the ids the API takes.

// A `datetime-local` value ("2027-01-04T08:00", seconds optional), read in this computer's time
// zone, as the API's UTC text ("2027-01-04T16:00:00.000Z"); "" (left empty) is null. A value the
// input would not give is sent as it is, for the API to refuse naming its field.
export function localToUtc(value) {
  const text = String(value ?? "").trim();
  if (!text) return null;
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,3})?)?$/.test(text)) return text;
  const moment = new Date(text); // date and time without an offset: local time (ECMA-262)
  return Number.isNaN(moment.getTime()) ? text : moment.toISOString();
}

const two = (n) => String(n).padStart(2, "0");

// The API's UTC text as a `datetime-local` value in this computer's time zone, to the minute,
// or to the second when it has seconds; null or "" is "" (an empty input).
export function utcToLocal(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return "";
  const day = `${t.getFullYear()}-${two(t.getMonth() + 1)}-${two(t.getDate())}`;
  const time = `${two(t.getHours())}:${two(t.getMinutes())}`;
  return `${day}T${time}${t.getSeconds() ? `:${two(t.getSeconds())}` : ""}`;
}

// The CSV import's refusal ("2 bad rows, nothing imported: line 3: no course 'X'; line 5: ...")
// as [{line, why}] in line order, to show as a list; [] when it names no line.
export function csvProblems(detail) {
  const text = String(detail ?? "");
  const start = text.search(/\bline \d+: /i);
  if (start < 0) return [];
  return text
    .slice(start)
    .split(/; (?=line \d+: )/i)
    .map((part) => {
      const [, line, why] = part.match(/^line (\d+): ([\s\S]*)$/i) || [];
      return line ? { line: Number(line), why: why.replace(/[.\s]+$/, "") } : null;
    })
    .filter(Boolean)
    .sort((a, b) => a.line - b.line);
}

// Names separated by commas, semicolons, spaces or lines: the words typed.
export const words = (text) =>
  String(text ?? "")
    .split(/[\s,;]+/)
    .filter(Boolean);

// The users a person typed ("ajohnson, 12"), by username (any case) or id, as
// {ids, unknown}: the ids in the order typed, once each, and what matched no user.
export function userIds(text, users) {
  const byName = new Map(users.map((u) => [u.username.toLowerCase(), u.id]));
  const known = new Set(users.map((u) => u.id));
  const ids = [];
  const unknown = [];
  for (const word of words(text)) {
    const id = /^\d+$/.test(word) && known.has(Number(word)) ? Number(word) : byName.get(word.toLowerCase());
    if (id === undefined) unknown.push(word);
    else if (!ids.includes(id)) ids.push(id);
  }
  return { ids, unknown };
}

// One user a person typed (a username or an id), or null.
export function oneUser(text, users) {
  const { ids, unknown } = userIds(text, users);
  return ids.length === 1 && !unknown.length ? users.find((u) => u.id === ids[0]) : null;
}

// Course codes separated by commas or semicolons ("CPSC 131, MATH 150A"; spaces inside a code,
// and case, as typed), as {ids, unknown}.
export function courseIds(text, courses) {
  const squeeze = (code) => code.replace(/\s+/g, " ").trim().toUpperCase();
  const byCode = new Map(courses.map((c) => [squeeze(c.code), c.id]));
  const ids = [];
  const unknown = [];
  for (const code of String(text ?? "").split(/[,;\n]+/).map(squeeze).filter(Boolean)) {
    const id = byCode.get(code);
    if (id === undefined) unknown.push(code);
    else if (!ids.includes(id)) ids.push(id);
  }
  return { ids, unknown };
}

// The users matching what a person searched for: an id, or a part of the username or of the
// first and last name, in any case; at most `most` of them, in id order.
export function matchingUsers(users, query, most = 20) {
  const needle = String(query ?? "").trim().toLowerCase();
  const found = users.filter(
    (u) =>
      !needle ||
      String(u.id) === needle ||
      `${u.username}\n${u.first_name} ${u.last_name}`.toLowerCase().includes(needle),
  );
  return { shown: found.slice(0, most), more: Math.max(0, found.length - most) };
}

export const CLASS_LEVELS = ["freshman", "sophomore", "junior", "senior", "graduate"];

// Whom a registration window is for, in words.
export function audience(window, usersById = new Map()) {
  if (window.class_level) return `${capital(window.class_level)} students`;
  if (!window.user_ids?.length) return "Everyone";
  const names = window.user_ids.map((id) => usersById.get(id)?.username ?? `user ${id}`);
  const n = names.length;
  return `${n} ${n === 1 ? "student" : "students"}: ${names.join(", ")}`;
}

export const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);

// The rules a permit can waive (the API's `Waiver`), each with how the office names it.
export const WAIVERS = [
  ["capacity", "Capacity: a seat past the limit"],
  ["prerequisite", "Prerequisites not completed"],
  ["time_conflict", "A time conflict"],
  ["credit_limit", "The credit limit"],
  ["window", "The registration window and add deadline"],
];

export const waived = (waives) => waives.map((w) => w.replace("_", " ")).join(", ");
