// The web app's retry rules (share/web/js/retry.js), run by node's own test runner from ./bin/test:
// which outcomes are sent again, how long each wait is, and what the page says meanwhile.

import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  BASE_DELAY_MS,
  MAX_DELAY_MS,
  RETRIES,
  backoff,
  isWrite,
  newKey,
  outcomeUnknown,
  parseRetryAfter,
  retryable,
  stillTrying,
  withRetries,
} from "../../share/web/js/retry.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// A `send` that plays `outcomes` in turn: a number is an answer with that status, an object an
// answer as it is, "cut" a connection that failed.
function script(...outcomes) {
  const tries = [];
  const send = async (attempt) => {
    tries.push(attempt);
    const next = outcomes[Math.min(attempt, outcomes.length - 1)];
    if (next === "cut") throw new TypeError("Failed to fetch");
    return typeof next === "number" ? { status: next } : next;
  };
  return { send, tries };
}

// withRetries with no real waiting: the waits asked for, and what onRetry was told.
async function run(send, options = {}) {
  const waits = [];
  const told = [];
  const outcome = await withRetries(send, {
    wait: async (ms) => waits.push(ms),
    onRetry: (info) => told.push(info),
    random: () => 0.5,
    ...options,
  });
  return { outcome, waits, told };
}

describe("which outcomes are sent again", () => {
  test("a cut connection and every 5xx the gateways and services answer", () => {
    assert.equal(retryable({ error: new TypeError("Failed to fetch") }), true);
    for (const status of [500, 502, 503, 504]) assert.equal(retryable({ status }), true, status);
  });

  test("never a 4xx: the service has answered, and the answer stands", () => {
    for (const status of [400, 401, 403, 404, 405, 409, 413, 422, 429]) {
      assert.equal(retryable({ status, code: "anything" }), false, status);
    }
  });

  test("except 409 request_in_progress: the first try with this key is still running", () => {
    assert.equal(retryable({ status: 409, code: "request_in_progress" }), true);
    assert.equal(retryable({ status: 409, code: "already_enrolled" }), false);
  });

  test("2xx answers are final", () => {
    assert.equal(retryable({ status: 200 }), false);
    assert.equal(retryable({ status: 201 }), false);
  });

  test("writes are the methods that carry a key", () => {
    for (const m of ["POST", "PUT", "PATCH", "DELETE", "post"]) assert.equal(isWrite(m), true, m);
    for (const m of ["GET", "HEAD", "OPTIONS"]) assert.equal(isWrite(m), false, m);
  });
});

describe("backoff", () => {
  test("each wait is longer than the one before, whatever the jitter", () => {
    for (let retry = 1; retry < RETRIES; retry++) {
      const longest = backoff(retry, { random: () => 0.999999 });
      const shortest = backoff(retry + 1, { random: () => 0 });
      assert.ok(shortest >= longest, `retry ${retry + 1} may wait ${shortest}, ${retry}: ${longest}`);
    }
  });

  test("doubles, with half of each step random (equal jitter)", () => {
    assert.equal(backoff(1, { random: () => 0 }), BASE_DELAY_MS / 2);
    assert.equal(backoff(1, { random: () => 1 }), BASE_DELAY_MS);
    assert.equal(backoff(2, { random: () => 0 }), BASE_DELAY_MS);
    assert.equal(backoff(3, { random: () => 1 }), BASE_DELAY_MS * 4);
    const spread = new Set(Array.from({ length: 20 }, () => backoff(2)));
    assert.ok(spread.size > 1, "a crowd cut off at once must not come back at once");
    for (const ms of spread) assert.ok(ms >= BASE_DELAY_MS && ms <= 2 * BASE_DELAY_MS, ms);
  });

  test("never sooner than Retry-After asks, and never longer than the cap", () => {
    assert.equal(backoff(1, { random: () => 0, retryAfterMs: 3000 }), 3000);
    assert.equal(backoff(3, { random: () => 1, retryAfterMs: 0 }), BASE_DELAY_MS * 4);
    assert.equal(backoff(1, { retryAfterMs: 3_600_000 }), MAX_DELAY_MS);
    assert.ok(backoff(40, { random: () => 1 }) <= MAX_DELAY_MS);
  });

  test("Retry-After is read as seconds or as an HTTP date", () => {
    const now = Date.parse("2026-12-06T10:00:00Z");
    assert.equal(parseRetryAfter("3", now), 3000);
    assert.equal(parseRetryAfter(" 0 ", now), 0);
    assert.equal(parseRetryAfter("Sun, 06 Dec 2026 10:00:05 GMT", now), 5000);
    assert.equal(parseRetryAfter("Sun, 06 Dec 2026 09:00:00 GMT", now), 0); // already past
    for (const absent of [null, undefined, "", "soon", "-1"]) {
      assert.equal(parseRetryAfter(absent, now), null, String(absent));
    }
  });
});

describe("withRetries", () => {
  test("a cut connection then 502 then 201: three tries, two waits, the 201", async () => {
    const { send, tries } = script("cut", 502, { status: 201, body: "seat" });
    const { outcome, waits, told } = await run(send);

    assert.deepEqual(tries, [0, 1, 2]);
    assert.equal(outcome.status, 201);
    assert.equal(outcome.body, "seat");
    assert.equal(outcome.tries, 3);
    assert.equal(outcome.settled, true);
    assert.deepEqual(waits, [backoff(1, { random: () => 0.5 }), backoff(2, { random: () => 0.5 })]);
    assert.deepEqual(
      told.map(({ retry, retries, delayMs }) => [retry, retries, delayMs]),
      [[1, 3, waits[0]], [2, 3, waits[1]]],
    );
  });

  test("at most 3 retries: 4 tries, then an unsettled outcome", async () => {
    const { send, tries } = script(503);
    const { outcome, waits } = await run(send);

    assert.deepEqual(tries, [0, 1, 2, 3]);
    assert.equal(waits.length, 3);
    assert.ok(waits[0] < waits[1] && waits[1] < waits[2], `waits grow: ${waits}`);
    assert.equal(outcome.status, 503);
    assert.equal(outcome.tries, 4);
    assert.equal(outcome.settled, false);
  });

  test("a connection cut on every try ends unsettled too, with the error", async () => {
    const { send, tries } = script("cut");
    const { outcome } = await run(send);

    assert.equal(tries.length, 1 + RETRIES);
    assert.ok(outcome.error instanceof TypeError);
    assert.equal(outcome.settled, false);
  });

  test("a 4xx is answered at once: one try, no wait", async () => {
    for (const status of [400, 404, 409, 422, 429]) {
      const { send, tries } = script({ status, code: "refused", retryAfter: "1" });
      const { outcome, waits, told } = await run(send);

      assert.deepEqual(tries, [0], status);
      assert.deepEqual(waits, []);
      assert.deepEqual(told, []);
      assert.equal(outcome.settled, true);
    }
  });

  test("the service's Retry-After sets the wait", async () => {
    const { send } = script({ status: 503, retryAfter: "2" }, { status: 200 });
    const { waits } = await run(send);

    assert.deepEqual(waits, [2000]);
  });

  test("a retry that meets the first try still running waits for it", async () => {
    const busy = { status: 409, code: "request_in_progress" };
    const { send, tries } = script("cut", busy, { status: 201 });
    const { outcome } = await run(send);

    assert.equal(tries.length, 3);
    assert.equal(outcome.status, 201);
  });

  test("retries: 0 sends once", async () => {
    const { send, tries } = script(500);
    const { outcome } = await run(send, { retries: 0 });

    assert.deepEqual(tries, [0]);
    assert.equal(outcome.settled, false);
  });
});

describe("keys and words", () => {
  test("a key is a fresh random UUID each time", () => {
    const keys = new Set(Array.from({ length: 50 }, () => newKey()));
    assert.equal(keys.size, 50);
    for (const key of keys) assert.match(key, UUID);
  });

  test("without crypto.randomUUID (a page not served over https) the key is made all the same", () => {
    const plain = { getRandomValues: (bytes) => globalThis.crypto.getRandomValues(bytes) };
    const keys = new Set(Array.from({ length: 50 }, () => newKey(plain)));
    assert.equal(keys.size, 50);
    for (const key of keys) assert.match(key, UUID);
  });

  test("while retrying, the page says it is still trying, what, and which try", () => {
    assert.equal(
      stillTrying("Enroll in CPSC-101-01", 1, 3),
      "Still trying… Enroll in CPSC-101-01: the registration service has not given a definite " +
        "answer yet (try 2 of 4).",
    );
    assert.match(stillTrying(null, 3, 3), /^Still trying… The registration service .* \(try 4 of 4\)\.$/);
  });

  test("after the last try, it says plainly the outcome is unknown and trying again is safe", () => {
    const text = outcomeUnknown(4);
    assert.match(text, /not known whether that was done/);
    assert.match(text, /after 4 tries/);
    assert.match(text, /Trying again is safe/);
  });
});
