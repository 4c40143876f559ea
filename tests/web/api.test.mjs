// The web app's calls to the gateways (share/web/js/api.js) with fetch played by the test: which
// requests carry an Idempotency-Key, that every retry of one action sends the same one, when a
// call is sent again, and what the person is told. Waits are recorded, not waited.

import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";

const ENROLL = "https://enroll.test/enroll_api";
const AUTH = "https://auth.test/auth_api";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// The tab's sessionStorage, signed in as user 7 with a token good for an hour.
const stored = new Map();
globalThis.sessionStorage = {
  getItem: (k) => (stored.has(k) ? stored.get(k) : null),
  setItem: (k, v) => stored.set(k, String(v)),
  removeItem: (k) => stored.delete(k),
};
function signedIn() {
  const user = { id: 7, username: "student", name: "A Student", roles: ["student"] };
  const value = { access: "a.b.c", refresh: "r1", expiresAt: Date.now() + 3_600_000, user };
  stored.set("registration.session", JSON.stringify(value));
}

// fetch, as the test plays it: `answers` in turn (a number: that status with no body; [status,
// body, headers]; "cut": the connection fails), the last one for every request after. Each request
// is kept in `sent`.
let answers = [];
let sent = [];
globalThis.fetch = async (url, init = {}) => {
  if (url === "config.json") return Response.json({ enroll_api: ENROLL, auth_api: AUTH });
  sent.push({ url, method: init.method, headers: { ...init.headers }, body: init.body });
  const next = answers[Math.min(sent.length - 1, answers.length - 1)];
  if (next === "cut") throw new TypeError("Failed to fetch");
  const [status, body, headers] = typeof next === "number" ? [next] : next;
  const text = body === undefined ? null : JSON.stringify(body);
  return new Response(status === 204 ? null : text, { status, headers });
};

// Waits between tries (never over 10 s) are recorded and over at once; a longer timer (the next
// token refresh, minutes away) is not run.
let waits = [];
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = (fn, ms) => {
  if (ms > 10_000) return 0;
  waits.push(ms);
  return realSetTimeout(fn, 0);
};

const api = await import("../../share/web/js/api.js");
await api.loadConfig();
let shown = [];
api.onRetrying((info) => shown.push(info));

beforeEach(() => {
  signedIn();
  answers = [];
  sent = [];
  waits = [];
  shown = [];
});

// An access token for user 7 as the auth service signs one (the app reads only its claims).
function accessToken() {
  const claims = { sub: "7", preferred_username: "s", given_name: "A", family_name: "B", roles: [] };
  return `h.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.s`;
}

const keys = () => sent.map((r) => r.headers["Idempotency-Key"]);
const enroll = (section, options = {}) =>
  api.enroll("/users/7/enrollments", { method: "POST", json: { section_id: section }, ...options });
const refusal = async (promise) => {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("not refused");
};

describe("Idempotency-Key", () => {
  test("every write carries a fresh key; a read carries none", async () => {
    answers = [[201, { status: "enrolled" }]];
    await enroll(1);
    await enroll(2);
    await api.enroll("/users/7/enrollments/1", { method: "DELETE" });
    await api.enroll("/sections/1", { method: "PATCH", json: { capacity: 3 } });
    answers = [[200, []]];
    await api.enroll("/sections");

    const [a, b, c, d, read] = keys();
    for (const key of [a, b, c, d]) assert.match(key, UUID);
    assert.equal(new Set([a, b, c, d]).size, 4, "one key per action");
    assert.equal(read, undefined);
  });

  test("sign-in carries one too", async () => {
    const tokens = { access_token: accessToken(), refresh_token: "r", expires_in: 900 };
    answers = ["cut", [200, tokens]];
    await api.signIn("s", "pw");

    assert.equal(sent.length, 2);
    assert.match(keys()[0], UUID);
    assert.equal(keys()[0], keys()[1]);
  });
});

describe("retries", () => {
  test("a cut, a 502 and a 504 are sent again with the same key; the 201 is the answer", async () => {
    answers = ["cut", [502, { detail: "backend failed", code: "backend_failed" }], 504,
      [201, { status: "enrolled" }]];  // prettier-ignore
    const told = [];
    const result = await enroll(5, { onRetry: (info) => told.push(info) });

    assert.deepEqual(result, { status: "enrolled" });
    assert.equal(sent.length, 4);
    assert.equal(new Set(keys()).size, 1, `one key for every try: ${keys()}`);
    assert.ok(sent.every((r) => r.body === '{"section_id":5}'));
    assert.deepEqual(told.map((t) => t.retry), [1, 2, 3]);
    assert.ok(waits[0] < waits[1] && waits[1] < waits[2], `the waits grow: ${waits}`);
    assert.deepEqual(shown, [], "the action's own onRetry was told, not the page's");
  });

  test("a 4xx is never sent again: the API's own sentence is the outcome", async () => {
    answers = [[409, { detail: "already enrolled in this section", code: "already_enrolled" }]];
    const error = await refusal(enroll(5));

    assert.equal(sent.length, 1);
    assert.equal(error.message, "Already enrolled in this section.");
    assert.equal(error.status, 409);
    assert.equal(error.code, "already_enrolled");
    assert.deepEqual(waits, []);
  });

  test("Retry-After is honoured", async () => {
    answers = [[503, { detail: "busy", code: "unavailable" }, { "Retry-After": "4" }], 204];
    await api.enroll("/users/7/waitlist/3", { method: "DELETE" });

    assert.deepEqual(waits, [4000]);
  });

  test("a read is sent again after a cut connection, and the page is told", async () => {
    answers = ["cut", [200, [{ id: 1 }]]];
    const sections = await api.enroll("/sections");

    assert.deepEqual(sections, [{ id: 1 }]);
    assert.equal(sent.length, 2);
    assert.deepEqual(shown.map((s) => [s.retry, s.retries]), [[1, 3]]);
  });

  test("a read that never gets through says the service cannot be reached", async () => {
    answers = ["cut"];
    const error = await refusal(api.enroll("/sections"));

    assert.equal(sent.length, 4);
    assert.match(error.message, /cannot be reached/);
  });
});

describe("an outcome that is not known", () => {
  test("after the last try: not known, safe to try again, and again goes with the same key", async () => {
    answers = [500, "cut", 502, 503];
    const error = await refusal(enroll(9));

    assert.equal(sent.length, 4);
    assert.equal(error.code, "outcome_unknown");
    assert.match(error.message, /not known whether that was done/);
    assert.match(error.message, /Trying again is safe/);
    const first = keys()[0];

    // The person presses Enroll again: the same request, so the same key; the service replays
    // the first answer if the first try did get through.
    answers = [[201, { status: "enrolled" }]];
    sent = [];
    await enroll(9);
    assert.deepEqual(keys(), [first]);

    // That answer settled it: the next enroll in the same section is a new action, a new key.
    sent = [];
    await enroll(9).catch(() => {});
    assert.notEqual(keys()[0], first);
  });

  test("another request after an unknown outcome gets a key of its own", async () => {
    answers = [503];
    await refusal(enroll(10));
    const first = keys()[0];
    answers = [[201, { status: "enrolled" }]];
    sent = [];
    await enroll(11);

    assert.notEqual(keys()[0], first);
  });

  test("a write still running at the service is waited for, not reported as refused", async () => {
    const running = [409, { detail: "still running", code: "request_in_progress" }];
    answers = ["cut", running, [201, { status: "waitlisted", position: 1 }]];
    const result = await enroll(12);

    assert.equal(result.status, "waitlisted");
    assert.equal(new Set(keys()).size, 1);
  });
});

describe("an access token that expired in between", () => {
  test("is refreshed with the key kept in the session, which goes with the new tokens", async () => {
    const token = accessToken();
    answers = [401, [200, { access_token: token, refresh_token: "r2", expires_in: 900 }],
      [201, { status: "enrolled" }]];  // prettier-ignore
    await enroll(15);

    assert.equal(sent[1].url, `${AUTH}/refresh`);
    assert.match(sent[1].headers["Idempotency-Key"], UUID);
    const now = JSON.parse(stored.get("registration.session"));
    assert.equal(now.refresh, "r2");
    assert.equal(now.refreshKey, undefined);
  });

  test("a refresh whose page was reloaded on its way is sent again with its key", async () => {
    // The page before had saved its refresh's key with the session, then was reloaded before
    // the answer came: the service has turned "r1" already, and only that key gets its answer.
    const before = JSON.parse(stored.get("registration.session"));
    stored.set("registration.session", JSON.stringify({ ...before, refreshKey: "key-of-the-page-before" }));
    const token = accessToken();
    answers = [401, [200, { access_token: token, refresh_token: "r2", expires_in: 900 }],
      [201, { status: "enrolled" }]];  // prettier-ignore
    await enroll(16);

    assert.equal(sent[1].url, `${AUTH}/refresh`);
    assert.equal(sent[1].headers["Idempotency-Key"], "key-of-the-page-before");
    assert.equal(JSON.parse(sent[1].body).refresh_token, "r1");
    assert.equal(JSON.parse(stored.get("registration.session")).refreshKey, undefined);
  });

  test("is refreshed once and the write sent again with the same key", async () => {
    const token = accessToken();
    answers = [401, [200, { access_token: token, refresh_token: "r2", expires_in: 900 }],
      [201, { status: "enrolled" }]];  // prettier-ignore
    await enroll(13);

    const writes = sent.filter((r) => r.url.endsWith("/enrollments"));
    assert.equal(sent[1].url, `${AUTH}/refresh`);
    assert.equal(writes.length, 2);
    assert.equal(writes[0].headers["Idempotency-Key"], writes[1].headers["Idempotency-Key"]);
    assert.equal(writes[1].headers.Authorization, `Bearer ${token}`);
  });
});
