// The web app's page-free logic (share/web/js/logic.js), run by node's own test runner from
// ./bin/test: what an enroll button says, the weekly schedule grid, the roster as CSV.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  csvField,
  dayNames,
  enrollAction,
  enrollName,
  meetingTimes,
  passedOverReason,
  rosterCsv,
  rosterFilename,
  scheduleGrid,
} from "../../share/web/js/logic.js";

const section = (over = {}) => ({
  frozen: false,
  seats_available: 0,
  waitlisted: 0,
  waitlist_capacity: 15,
  ...over,
});

describe("enrollAction", () => {
  test("a free seat and nobody waiting: Enroll", () => {
    assert.deepEqual(enrollAction(section({ seats_available: 3 })), { button: "Enroll", reason: null });
  });

  test("full with room on the waitlist: the place the student would take", () => {
    const action = enrollAction(section({ waitlisted: 3 }));
    assert.deepEqual(action, { button: "Join waitlist (4 of 15)", reason: null });
  });

  test("a free seat while others wait goes to them: the waitlist", () => {
    const action = enrollAction(section({ seats_available: 1, waitlisted: 2, waitlist_capacity: 5 }));
    assert.equal(action.button, "Join waitlist (3 of 5)");
  });

  test("frozen: no button, and why", () => {
    const action = enrollAction(section({ frozen: true, seats_available: 9 }));
    assert.equal(action.button, null);
    assert.match(action.reason, /Frozen/);
  });

  test("a full waitlist: no button, with its numbers", () => {
    const action = enrollAction(section({ waitlisted: 5, waitlist_capacity: 5 }));
    assert.deepEqual(action, { button: null, reason: "Full, and its waitlist is full (5 of 5)." });
  });

  test("a section with no waitlist at all, full: no button", () => {
    assert.equal(enrollAction(section({ waitlist_capacity: 0 })).button, null);
  });

  test("a capacity permit: a seat even when full, waitlist and all", () => {
    const full = section({ waitlisted: 15 });
    assert.equal(enrollAction(full, { capacityPermit: true }).button, "Enroll (your permit)");
  });

  test("on three waitlists already: no waitlist button, but a free seat still shows Enroll", () => {
    assert.match(enrollAction(section({ waitlisted: 1 }), { waitlists: 3 }).reason, /3 waitlists/);
    assert.equal(enrollAction(section({ seats_available: 1 }), { waitlists: 3 }).button, "Enroll");
  });
});

describe("enrollName", () => {
  test("the button's visible words come first, then the section it is for", () => {
    assert.equal(enrollName("Enroll", "CPSC 101-01"), "Enroll in CPSC 101-01");
    assert.equal(enrollName("Enroll (your permit)", "CPSC 101-01"), "Enroll (your permit) in CPSC 101-01");
    assert.equal(
      enrollName("Join waitlist (4 of 15)", "CPSC 101-01"),
      "Join waitlist (4 of 15) for CPSC 101-01",
    );
  });

  test("whatever enrollAction says is contained in the name (WCAG 2.5.3)", () => {
    for (const s of [section({ seats_available: 1 }), section({ waitlisted: 3 }), section({ waitlisted: 15 })]) {
      const { button } = enrollAction(s, { capacityPermit: s.waitlisted === 15 });
      assert.ok(enrollName(button, "X 1-01").startsWith(button));
    }
  });
});

describe("meeting times", () => {
  test("the meetings, else the free-text schedule, else a dash", () => {
    const meetings = [{ days: "MW", start: "16:00", end: "17:15" }, { days: "F", start: "09:00", end: "09:50" }];
    assert.equal(meetingTimes({ meetings, schedule: "x" }), "MW 16:00–17:15; F 09:00–09:50");
    assert.equal(meetingTimes({ meetings: [], schedule: "TTh 10:00-11:15" }), "TTh 10:00-11:15");
    assert.equal(meetingTimes({ meetings: [], schedule: "" }), "—");
  });

  test("day letters in words", () => {
    assert.equal(dayNames("MWR"), "Monday, Wednesday, Thursday");
  });
});

describe("scheduleGrid", () => {
  const a = { label: "CPSC 449-01", meetings: [{ days: "MW", start: "16:00", end: "17:15" }] };
  const b = { label: "MATH 150A-01", meetings: [{ days: "MTWRF", start: "08:00", end: "08:50" }] };

  test("one row an hour from the first start to the last end, Monday to Friday", () => {
    const grid = scheduleGrid([a, b]);
    assert.deepEqual(grid.days, ["M", "T", "W", "R", "F"]);
    assert.deepEqual(grid.rows.map((r) => r.from), [
      "08:00", "09:00", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00", "16:00", "17:00",
    ]);
    assert.equal(grid.rows.at(-1).to, "18:00");
    assert.deepEqual(grid.unplaced, []);
  });

  test("a meeting sits in every hour it overlaps, on its days only", () => {
    const grid = scheduleGrid([a, b]);
    const at = (from) => grid.rows.find((r) => r.from === from).cells;
    const entry = { label: "CPSC 449-01", start: "16:00", end: "17:15" };
    assert.deepEqual(at("16:00"), [[entry], [], [entry], [], []]);
    assert.deepEqual(at("17:00"), [[entry], [], [entry], [], []]);
    assert.deepEqual(at("08:00").map((c) => c.length), [1, 1, 1, 1, 1]);
    assert.deepEqual(at("12:00"), [[], [], [], [], []]);
  });

  test("two meetings at once share a cell, in start order", () => {
    const c = { label: "ENGL 101-01", meetings: [{ days: "M", start: "15:30", end: "16:30" }] };
    const cell = scheduleGrid([a, c]).rows.find((r) => r.from === "16:00").cells[0];
    assert.deepEqual(cell.map((e) => e.label), ["ENGL 101-01", "CPSC 449-01"]);
  });

  test("no times, or weekends only: listed apart; nothing at all: no rows", () => {
    const none = { label: "X-01", meetings: [] };
    const weekend = { label: "Y-01", meetings: [{ days: "S", start: "09:00", end: "12:00" }] };
    const grid = scheduleGrid([none, weekend]);
    assert.deepEqual(grid.rows, []);
    assert.deepEqual(grid.unplaced.map((s) => s.label), ["X-01", "Y-01"]);
  });
});

describe("roster CSV", () => {
  test("a field is quoted only when it must be, its quotes doubled", () => {
    assert.equal(csvField("Avery"), "Avery");
    assert.equal(csvField("O'Neil, Jr."), '"O\'Neil, Jr."');
    assert.equal(csvField('say "hi"'), '"say ""hi"""');
    assert.equal(csvField("two\nlines"), '"two\nlines"');
    assert.equal(csvField(null), "");
    assert.equal(csvField(3), "3");
  });

  test("a spreadsheet formula stays text", () => {
    assert.equal(csvField("=HYPERLINK(1)"), "'=HYPERLINK(1)");
    assert.equal(csvField("-1+2"), "'-1+2");
    assert.equal(csvField("@sum"), "'@sum");
  });

  test("header, the enrolled by name, then the waitlist in order; CRLF lines", () => {
    const csv = rosterCsv("CPSC 449-01", [
      { status: "waitlisted", position: 2, first_name: "Zed", last_name: "Adams", username: "zadams", email: "z@x.edu" },
      { status: "enrolled", position: null, first_name: "Ava", last_name: "Smith", username: "asmith", email: "a@x.edu" },
      { status: "waitlisted", position: 1, first_name: "Bo", last_name: "Young", username: "byoung", email: null },
      { status: "enrolled", position: null, first_name: "Li", last_name: "Chen, MD", username: "lchen", email: "l@x.edu" },
    ]);
    assert.equal(
      csv,
      "Section,Status,Waitlist position,Last name,First name,Username,Email\r\n" +
        'CPSC 449-01,enrolled,,"Chen, MD",Li,lchen,l@x.edu\r\n' +
        "CPSC 449-01,enrolled,,Smith,Ava,asmith,a@x.edu\r\n" +
        "CPSC 449-01,waitlisted,1,Young,Bo,byoung,\r\n" +
        "CPSC 449-01,waitlisted,2,Adams,Zed,zadams,z@x.edu\r\n",
    );
  });

  test("an empty roster is the header alone", () => {
    assert.equal(rosterCsv("X-01", []).split("\r\n").length, 2);
  });

  test("the file is named for the section, with no spaces", () => {
    assert.equal(rosterFilename("CPSC 449-01"), "CPSC-449-01-roster.csv");
    assert.equal(rosterFilename("MATH 150A-02"), "MATH-150A-02-roster.csv");
  });
});

describe("passedOverReason", () => {
  const at = "5/4/2026, 9:00:00 AM";
  const said = (rule, detail) => passedOverReason({ rule, detail }, at);

  test("a hold, with its reason, in the student's words", () => {
    assert.equal(
      said("hold", "user 30 has a hold: missing transcript (hold 4); the registrar lifts holds"),
      `A seat came free on ${at} and went to the next student in line, because you had a hold on` +
        " your record: missing transcript. The registrar's office lifts holds. You keep your place.",
    );
  });

  test("each rule's particulars from the API's sentence", () => {
    assert.match(said("prerequisite_missing", "CPSC 449 needs CPSC 131, CPSC 240 completed first"),
      /because you had not completed CPSC 131, CPSC 240\./);
    assert.match(
      said("time_conflict", "section 12 meets at the same time as section 5 (CPSC 131-01), which user 9 holds"),
      /because it meets at the same time as CPSC 131-01, which you hold\./,
    );
    assert.match(
      said("credit_limit", "CPSC 449 is 3 credits: user 9 holds 16 this term, so 19, over their limit of 18"),
      /because it would have taken you over your limit of 18 credits for the term\./,
    );
    assert.doesNotMatch(said("time_conflict", "section 12 meets at the same time"), /user|section 12/);
  });

  test("a sentence it cannot read still gives the rule; an unknown rule, the API's sentence", () => {
    assert.match(said("hold", "something else"), /because you had a hold on your record\. The/);
    assert.match(said("credit_limit", "?"), /over your limit for the term\./);
    assert.match(said("new_rule", "The API's own words"), /because The API's own words\. You keep/);
  });
});
