-- The auth service's database: accounts and their roles. Replicated by LiteFS; written only on the
-- primary (register, the registrar's account changes), read everywhere (login, refresh).

-- AUTOINCREMENT: a user id is never reused, because the enrollment service keys its records on it.
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE
                  CHECK (length(username) BETWEEN 3 AND 32 AND username = lower(username)),
    password_hash TEXT    NOT NULL,
    first_name    TEXT    NOT NULL CHECK (length(first_name) BETWEEN 1 AND 64),
    last_name     TEXT    NOT NULL CHECK (length(last_name) BETWEEN 1 AND 64),
    -- A disabled account signs in nowhere and its refresh tokens are refused.
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    -- Tokens carry the generation they were issued in; disabling the account, setting a new
    -- password or changing its roles moves it on, so every refresh token issued before is
    -- refused, and so is every access token at the registrar's account routes.
    token_generation INTEGER NOT NULL DEFAULT 0,
    -- Where notifications go, if one was given; NULL: <username>@<AUTH_MAIL_DOMAIN>, so a
    -- change of the installation's domain moves every default address with it.
    email         TEXT    CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    TEXT    NOT NULL CHECK (role IN ('student', 'instructor', 'registrar')),
    PRIMARY KEY (user_id, role)
) WITHOUT ROWID;

-- Sign-in sessions whose refresh token has been used or that were ended (POST /logout). A login
-- (on any node, read-only replicas included) starts a session without a row: its refresh token
-- carries a new `sid` and `seq` 0. Each refresh, on the primary, moves `refresh_seq` on and
-- issues the one refresh token that may be used next; an older one presented again ends the
-- session (OAuth 2.0 Security BCP, refresh token rotation). Rows untouched for longer than a
-- refresh token lives are deleted.
CREATE TABLE IF NOT EXISTS sessions (
    id          TEXT    PRIMARY KEY,  -- the refresh tokens' `sid`
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    refresh_seq INTEGER NOT NULL,     -- the `seq` of the only refresh token still usable
    ended       TEXT    CHECK (ended IN ('logout', 'reused')),  -- NULL: the session goes on
    updated_at  REAL    NOT NULL      -- Unix time of the last refresh or the end
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_age ON sessions (updated_at);

-- The registrar's changes to accounts: who changed whose account, what, and when. Written in the
-- transaction that makes the change, on the primary; read by GET /audit (newest first).
CREATE TABLE IF NOT EXISTS account_audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor_id INTEGER NOT NULL,
    action   TEXT    NOT NULL CHECK (action IN ('account.create', 'account.roles',
             'account.names', 'account.email', 'account.disable', 'account.enable',
             'account.password')),
    user_id  INTEGER NOT NULL,
    details  TEXT    NOT NULL DEFAULT '{}'  -- JSON: what changed (never a password or hash)
);
CREATE INDEX IF NOT EXISTS account_audit_by_actor ON account_audit (actor_id, id);
CREATE INDEX IF NOT EXISTS account_audit_by_user ON account_audit (user_id, id);

-- idempotency_keys (Idempotency-Key's answers) is share/common/idempotency.sql, the same in
-- both services' databases; init_db applies it after this file.

-- Identifies the file as the auth service's database, at this schema version; the service
-- refuses to start on anything else.
PRAGMA application_id = 1096111176;  -- 'AUTH'
PRAGMA user_version = 5;  -- 2: disabled, token_generation; 3: sessions, account_audit;
-- 4: idempotency_keys; 5: users.email, account_audit's 'account.email'
-- (app/auth/init_db.py migrates older versions)
