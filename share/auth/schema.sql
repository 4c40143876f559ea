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
    -- Refresh tokens carry the generation they were issued in; disabling the account or setting
    -- a new password moves it on, so every refresh token issued before is refused.
    token_generation INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role    TEXT    NOT NULL CHECK (role IN ('student', 'instructor', 'registrar')),
    PRIMARY KEY (user_id, role)
) WITHOUT ROWID;

-- Identifies the file as the auth service's database, at this schema version; the service
-- refuses to start on anything else.
PRAGMA application_id = 1096111176;  -- 'AUTH'
PRAGMA user_version = 2;  -- 2: disabled, token_generation (app/auth/init_db.py migrates 1)
