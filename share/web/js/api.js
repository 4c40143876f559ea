// The two gateways, the signed-in session, and every API error as a sentence a person can read.
// Tokens live in sessionStorage: one session per browser tab, gone when the tab closes.

import { isWrite, newKey, outcomeUnknown, withRetries } from "./retry.js";

const KEY = "registration.session";
let config = null; // {enroll_api, auth_api}, from the server's /config.json
let refreshTimer = null;
let sessionEnded = () => {};

export class ApiError extends Error {
  constructor(message, status, code, errors = []) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors; // a 422's fields: [{field, message}] (ui.js fieldErrors shows them)
  }
}

export async function loadConfig() {
  const response = await fetch("config.json");
  config = await response.json();
}

export function session() {
  return JSON.parse(sessionStorage.getItem(KEY) || "null");
}

function save(value) {
  sessionStorage.setItem(KEY, JSON.stringify(value));
}

// What the page does when the session ends by itself (refresh refused): `fn(message)`.
export function onSessionEnded(fn) {
  sessionEnded = fn;
}

function claims(token) {
  const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(payload), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

function withAccess(value, accessToken, expiresIn) {
  const c = claims(accessToken);
  return {
    ...value,
    access: accessToken,
    expiresAt: Date.now() + expiresIn * 1000,
    user: {
      id: Number(c.sub),
      username: c.preferred_username,
      name: `${c.given_name} ${c.family_name}`,
      roles: c.roles,
    },
  };
}

export async function signIn(username, password, { onRetry } = {}) {
  const body = await call(`${config.auth_api}/login`, {
    method: "POST",
    json: { username, password },
    auth: false,
    onRetry,
  });
  save(withAccess({ refresh: body.refresh_token }, body.access_token, body.expires_in));
  keepFresh();
  return session();
}

// Forget the session here, and end it at the auth service too (POST /logout), so that its
// refresh token is refused from now on wherever a copy of it is.
export async function signOut() {
  clearTimeout(refreshTimer);
  const current = session();
  sessionStorage.removeItem(KEY);
  unsettled.clear();
  if (!current) return;
  try {
    await call(`${config.auth_api}/logout`, {
      method: "POST",
      json: { refresh_token: current.refresh },
      auth: false,
    });
  } catch {
    // Already ended, or the service is out of reach: the tokens are gone from this tab either
    // way, and the refresh token expires by itself.
  }
}

function forget() {
  clearTimeout(refreshTimer);
  sessionStorage.removeItem(KEY);
  unsettled.clear();
}

// Trade the refresh token for a new access token a while before the current one expires: at
// 80% of its remaining life, and no later than a minute before it ends.
export function keepFresh() {
  clearTimeout(refreshTimer);
  const current = session();
  if (!current) return;
  const left = current.expiresAt - Date.now();
  const wait = Math.max(1000, Math.min(left - 60_000, left * 0.8));
  refreshTimer = setTimeout(refresh, wait);
}

// true: a new access token is in place. false: the session has ended (and the page was told),
// or the auth gateway could not be reached (tried again shortly). A refresh token is good for
// one use (the answer brings the next), so the tab never sends two refreshes at once: a second
// caller waits for the refresh in flight.
let refreshing = null;
function refresh() {
  if (!refreshing) refreshing = refreshOnce().finally(() => (refreshing = null));
  return refreshing;
}

async function refreshOnce() {
  let current = session();
  if (!current) return false;
  // The refresh's Idempotency-Key is kept with the session before it is sent: a page reloaded
  // while it was on its way (its answer lost with the page) sends it again with the same key and
  // gets the same new tokens, where the refresh token alone, used already, would end the session.
  if (!current.refreshKey) {
    current = { ...current, refreshKey: newKey() };
    save(current);
  }
  try {
    const body = await call(`${config.auth_api}/refresh`, {
      method: "POST",
      json: { refresh_token: current.refresh },
      auth: false,
      key: current.refreshKey,
      onRetry: () => {}, // out of sight: the person is doing something else meanwhile
    });
    // Signed out (or signed in anew) while this refresh was on its way: its tokens are not
    // this tab's session any more, and saving them would sign the tab back in.
    if (session()?.refresh !== current.refresh) return false;
    const { refreshKey: _used, ...renewed } = current;
    save(withAccess({ ...renewed, refresh: body.refresh_token }, body.access_token, body.expires_in));
    keepFresh();
    return true;
  } catch (error) {
    if (error.status === 401 || error.status === 403) {
      forget();
      sessionEnded(`Your session has ended: ${error.message} Please sign in again.`);
    } else {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(refresh, 5000);
    }
    return false;
  }
}

// A call to the enroll gateway: `path` after its prefix, e.g. "/sections?q=cpsc".
export function enroll(path, options = {}) {
  return call(`${config.enroll_api}${path}`, options);
}

// A signed-in call to the auth gateway: `path` after its prefix, e.g. "/audit?limit=50".
export function auth(path, options = {}) {
  return call(`${config.auth_api}${path}`, options);
}

const FALLBACK = {
  401: "Your session has ended. Please sign in again.",
  403: "Your account is not allowed to do that.",
  404: "That was not found; it may have just been removed.",
  413: "That is more than the service accepts at once.",
  429: "Too many attempts; wait a moment and try again.",
};

function describe(status, body) {
  if (body && typeof body.detail === "string") {
    const detail = body.detail.charAt(0).toUpperCase() + body.detail.slice(1);
    const fields = (body.errors || []).map((e) => `${e.field}: ${e.message}`);
    const sentence = fields.length ? `${detail} (${fields.join("; ")})` : detail;
    return /[.!?)]$/.test(sentence) ? sentence : `${sentence}.`;
  }
  if (FALLBACK[status]) return FALLBACK[status];
  if (status >= 500) return "The registration service had a problem; try again in a moment.";
  return "The request was refused.";
}

// Writes whose outcome is not known (no definitive answer after every try), by who asked what:
// the same request again (the person pressing the button again) goes with the same key, so the
// service does it at most once and, if the first did get through, answers with that first answer
// instead of a confusing "already enrolled". Kept for signed-in writes only, so that no password
// or refresh token is held here; forgotten at the first definitive answer.
const unsettled = new Map();

// Shows "Still trying…" for a call that has no `onRetry` of its own (the reads behind a view).
let retryShown = () => {};
export function onRetrying(fn) {
  retryShown = fn;
}

// One request, sent again after a cut connection or a 5xx (retry.js): a write carries an
// Idempotency-Key, the same on every try (`key`, or one of its own). `onRetry({retry, retries,
// delayMs})` is told before each retry, to say "Still trying…". A body is `json`, or `text` of
// the type `contentType` (a CSV).
async function call(url, options = {}) {
  const { method = "GET", json, text, contentType = "application/json", auth = true } = options;
  const { onRetry = retryShown } = options;
  const body = json === undefined ? text : JSON.stringify(json);
  const signedIn = auth ? session() : null;
  if (auth && !signedIn) throw new ApiError(FALLBACK[401], 401, "signed_out");
  const write = isWrite(method);
  const asked = write && auth ? `${signedIn.user.id} ${method} ${url} ${body ?? ""}` : null;
  const key = write ? (options.key ?? unsettled.get(asked) ?? newKey()) : null;
  let refreshed = false;
  const send = async () => {
    for (;;) {
      const headers = {};
      if (body !== undefined) headers["Content-Type"] = contentType;
      if (key) headers["Idempotency-Key"] = key;
      if (auth) {
        const current = session();
        if (!current) return { status: 401, code: "signed_out", answer: null }; // signed out since
        headers.Authorization = `Bearer ${current.access}`;
      }
      const response = await fetch(url, {
        method,
        headers,
        cache: "no-store", // the gateway's cache is the one that counts; never a second, older one
        body,
      });
      // An access token that expired in between (a laptop asleep): refresh once and send again,
      // with the same key.
      if (auth && response.status === 401 && !refreshed) {
        refreshed = true;
        if (await refresh()) continue;
      }
      const text = await response.text();
      let answer = null;
      try {
        answer = text ? JSON.parse(text) : null;
      } catch {
        answer = null;
      }
      return {
        response,
        status: response.status,
        answer,
        code: answer && answer.code,
        retryAfter: response.headers.get("Retry-After"),
      };
    }
  };
  const outcome = await withRetries(send, { onRetry });
  if (outcome.settled) {
    unsettled.delete(asked);
    if (outcome.response?.ok) return outcome.answer;
    throw new ApiError(
      describe(outcome.status, outcome.answer),
      outcome.status,
      outcome.code,
      outcome.answer?.errors,
    );
  }
  if (write) {
    if (asked) unsettled.set(asked, key);
    throw new ApiError(outcomeUnknown(outcome.tries), outcome.status || 0, "outcome_unknown");
  }
  if (outcome.error !== undefined) {
    throw new ApiError(
      "The registration service cannot be reached right now; try again in a moment.",
      0,
      "unreachable",
    );
  }
  throw new ApiError(describe(outcome.status, outcome.answer), outcome.status, outcome.code);
}
