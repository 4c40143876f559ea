// The registrar's office's logic (share/web/js/office-logic.js), run by node's own test runner
// from ./bin/test: moments between a datetime-local input and the API's UTC text, the CSV
// import's refusal as a list of lines, and what a person types turned into ids.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  audience,
  courseIds,
  csvProblems,
  localToUtc,
  matchingUsers,
  oneUser,
  userIds,
  utcToLocal,
  waived,
  words,
} from "../../share/web/js/office-logic.js";

const USERS = [
  { id: 9, username: "ajohnson", first_name: "Ava", last_name: "Johnson" },
  { id: 10, username: "lsmith", first_name: "Liam", last_name: "Smith" },
  { id: 12, username: "njohnson", first_name: "Noah", last_name: "Johnson" },
];
const COURSES = [
  { id: 1, code: "CPSC 131" },
  { id: 4, code: "CPSC 449" },
  { id: 7, code: "MATH 150A" },
];

describe("moments", () => {
  test("a datetime-local value is read in this computer's time zone and sent as UTC", () => {
    const local = new Date(2027, 0, 4, 8, 30); // 2027-01-04 08:30 here, wherever here is
    assert.equal(localToUtc("2027-01-04T08:30"), local.toISOString());
    assert.equal(localToUtc("2027-01-04T08:30:15"), new Date(2027, 0, 4, 8, 30, 15).toISOString());
    assert.match(localToUtc("2027-01-04T08:30"), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  test("an empty input is null (no deadline), and a malformed one goes as typed, for the API to name", () => {
    assert.equal(localToUtc(""), null);
    assert.equal(localToUtc("   "), null);
    assert.equal(localToUtc(undefined), null);
    assert.equal(localToUtc("next tuesday"), "next tuesday");
    assert.equal(localToUtc("2027-13-45T99:99"), "2027-13-45T99:99");
  });

  test("the API's UTC text fills a datetime-local input in local time, seconds only when it has them", () => {
    const local = new Date(2027, 0, 4, 8, 30);
    assert.equal(utcToLocal(local.toISOString()), "2027-01-04T08:30");
    assert.equal(utcToLocal(new Date(2027, 5, 30, 23, 5, 7).toISOString()), "2027-06-30T23:05:07");
    assert.equal(utcToLocal(null), "");
    assert.equal(utcToLocal("not a moment"), "");
  });

  test("a moment goes to the input and back unchanged", () => {
    for (const iso of ["2027-01-04T16:00:00.000Z", "2026-12-31T23:59:59.000Z", "2027-07-01T00:00:01.000Z"]) {
      assert.equal(localToUtc(utcToLocal(iso)), iso);
    }
  });
});

describe("the CSV import's refusal", () => {
  test("each bad line becomes an item, in line order", () => {
    const detail =
      "3 bad rows, nothing imported: line 2: user_id 'x' is not a user id (ASCII digits 0-9);" +
      " line 4: user 9 and CPSC 131 again, as on line 3: one row per student and course;" +
      " line 7: no course 'NOPE 1'.";
    assert.deepEqual(csvProblems(detail), [
      { line: 2, why: "user_id 'x' is not a user id (ASCII digits 0-9)" },
      { line: 4, why: "user 9 and CPSC 131 again, as on line 3: one row per student and course" },
      { line: 7, why: "no course 'NOPE 1'" },
    ]);
  });

  test("a header refusal names line 1 (capitalized as the page shows it)", () => {
    assert.deepEqual(csvProblems("Line 1 is not CSV (bad quote)."), []);
    assert.deepEqual(
      csvProblems("Line 1: a control character in the header; the first line must name the columns."),
      [{ line: 1, why: "a control character in the header; the first line must name the columns" }],
    );
  });

  test("a refusal naming no line is no list", () => {
    assert.deepEqual(csvProblems("The first line must name the columns: user_id,course_code."), []);
    assert.deepEqual(csvProblems(undefined), []);
  });
});

describe("what a person types", () => {
  test("words are split on commas, semicolons, spaces and lines", () => {
    assert.deepEqual(words(" ajohnson, 10;lsmith\n12 "), ["ajohnson", "10", "lsmith", "12"]);
    assert.deepEqual(words(""), []);
  });

  test("users by username (any case) or id, once each, and what matched none", () => {
    assert.deepEqual(userIds("AJohnson, 10 lsmith 99 nobody", USERS), {
      ids: [9, 10],
      unknown: ["99", "nobody"],
    });
    assert.equal(oneUser(" njohnson ", USERS).id, 12);
    assert.equal(oneUser("12", USERS).username, "njohnson");
    assert.equal(oneUser("ajohnson lsmith", USERS), null);
    assert.equal(oneUser("", USERS), null);
  });

  test("course codes, separated by commas, in any case and spacing", () => {
    assert.deepEqual(courseIds("cpsc  131, MATH 150A; CPSC 131", COURSES), { ids: [1, 7], unknown: [] });
    assert.deepEqual(courseIds("CPSC 999", COURSES), { ids: [], unknown: ["CPSC 999"] });
    assert.deepEqual(courseIds("  ", COURSES), { ids: [], unknown: [] });
  });

  test("a search for a student matches an id, a username or a name, at most `most` shown", () => {
    assert.deepEqual(matchingUsers(USERS, "johnson").shown.map((u) => u.id), [9, 12]);
    assert.deepEqual(matchingUsers(USERS, "LIAM").shown.map((u) => u.id), [10]);
    assert.deepEqual(matchingUsers(USERS, "12").shown.map((u) => u.id), [12]);
    assert.deepEqual(matchingUsers(USERS, "johnson", 1), { shown: [USERS[0]], more: 1 });
  });
});

describe("in words", () => {
  test("whom a registration window is for", () => {
    const byId = new Map(USERS.map((u) => [u.id, u]));
    assert.equal(audience({ class_level: "senior", user_ids: [] }), "Senior students");
    assert.equal(audience({ class_level: null, user_ids: [] }), "Everyone");
    assert.equal(audience({ class_level: null, user_ids: [9, 77] }, byId), "2 students: ajohnson, user 77");
    assert.equal(audience({ class_level: null, user_ids: [10] }, byId), "1 student: lsmith");
  });

  test("what a permit waives", () => {
    assert.equal(waived(["capacity", "time_conflict", "credit_limit"]), "capacity, time conflict, credit limit");
  });
});
