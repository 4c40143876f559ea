// When a call to the API is sent again, how long after, and what the person reads meanwhile.
// Pure functions (the clock, the dice and the network come in as arguments), so that
// tests/web/retry.test.mjs runs them in node without a browser.
//
// A write (POST, PUT, PATCH, DELETE) carries an Idempotency-Key, the same one on every try of one
// action: the service applies it once and answers a repeat with the first answer. That is what
// makes sending a write again safe after a cut connection or a 5xx, when nobody can tell whether
// the first try was applied.

export const RETRIES = 3; // tries after the first
export const BASE_DELAY_MS = 500; // the first retry waits 250-500 ms, the next 500-1000, then 1-2 s
export const MAX_DELAY_MS = 10_000; // no wait is longer, whatever Retry-After asks
export const RETRY_STATUSES = new Set([500, 502, 503, 504]);

const WRITES = new Set(["POST", "PUT", "PATCH", "DELETE"]);

export function isWrite(method) {
  return WRITES.has(method.toUpperCase());
}

// A fresh Idempotency-Key: a random (version 4) UUID. crypto.randomUUID exists only where the
// page is a secure context (https, or 127.0.0.1); elsewhere the same UUID is made from
// crypto.getRandomValues, which every browser has.
export function newKey(crypto = globalThis.crypto) {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  const parts = [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20)];
  return [...parts, hex.slice(20)].join("-");
}

// Whether a try's outcome is worth sending again: a connection that failed (`{error}`: fetch
// rejected), or a 5xx, after which the request may or may not have been applied. Never a 4xx,
// with one exception: 409 request_in_progress says the first try with this key is still running
// at the service, so its answer is what the person is waiting for and a later try will replay it.
export function retryable(outcome) {
  if (outcome.error !== undefined) return true;
  if (RETRY_STATUSES.has(outcome.status)) return true;
  return outcome.status === 409 && outcome.code === "request_in_progress";
}

// Retry-After in milliseconds (delay-seconds or an HTTP date), or null when absent or unreadable.
export function parseRetryAfter(value, now = Date.now()) {
  if (value === null || value === undefined || String(value).trim() === "") return null;
  const text = String(value).trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  if (!/^[A-Za-z]{3}, /.test(text)) return null; // an HTTP date begins with its day's name
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

// How long to wait before retry number `retry` (1, 2, 3): exponential, with "equal jitter" (half
// the step fixed, half random) so that a crowd cut off at the same moment does not come back at
// the same moment, while each wait is still longer than the one before. A Retry-After from the
// service is honoured (never sooner than it asks), up to MAX_DELAY_MS.
export function backoff(retry, { random = Math.random, retryAfterMs = null } = {}) {
  const step = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (retry - 1));
  const jittered = step / 2 + random() * (step / 2);
  if (retryAfterMs === null) return jittered;
  return Math.min(MAX_DELAY_MS, Math.max(jittered, retryAfterMs));
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Send with `send(try)` (0 for the first) until the outcome is definitive or RETRIES retries are
// spent. `send` resolves with {status, code, retryAfter, ...} or rejects when the connection
// failed. Before each retry, `onRetry({retry, retries, delayMs})` is told (to show "Still
// trying…"). Resolves with the last outcome plus `tries` and `settled`: false when even the last
// try gave no definitive answer (what it asked may or may not have been applied).
export async function withRetries(send, options = {}) {
  const { retries = RETRIES, onRetry = () => {}, wait = sleep } = options;
  const { random = Math.random, now = Date.now } = options;
  for (let attempt = 0; ; attempt++) {
    let outcome;
    try {
      outcome = await send(attempt);
    } catch (error) {
      outcome = { error };
    }
    const again = retryable(outcome);
    if (!again || attempt === retries) return { ...outcome, tries: attempt + 1, settled: !again };
    const retryAfterMs = parseRetryAfter(outcome.retryAfter, now());
    const delayMs = backoff(attempt + 1, { random, retryAfterMs });
    onRetry({ retry: attempt + 1, retries, delayMs });
    await wait(delayMs);
  }
}

// What the page says while an action is being sent again.
export function stillTrying(what, retry, retries) {
  const subject = what ? `${what}: the` : "The";
  const already = `${subject} registration service has not given a definite answer yet`;
  return `Still trying… ${already} (try ${retry + 1} of ${retries + 1}).`;
}

// What the page says when a write got no definitive answer after every try.
export function outcomeUnknown(tries) {
  return (
    `It is not known whether that was done: the registration service gave no definite answer ` +
    `after ${tries} tries. Trying again is safe: it will not be done twice.`
  );
}
