-- The auth service's abuse counts (app/auth/throttle.py): one row per recent attempt. NOT on
-- LiteFS: a plain file that every auth node on this host opens read-write (AUTH_THROTTLE_DATABASE).
-- Disposable: deleting the file only forgets recent attempts; a file of another user_version is
-- emptied and made anew by throttle.create_schema. Rows older than the longest window are deleted
-- as new ones arrive.

CREATE TABLE IF NOT EXISTS attempts (
    id       INTEGER PRIMARY KEY,
    scope    TEXT    NOT NULL CHECK (scope IN ('login', 'registration')),
    -- SHA-256 of the client address, and for a sign-in of the username typed: the file never
    -- holds what someone typed (a password typed into the username field, say).
    address  TEXT    NOT NULL,
    username TEXT,
    -- A sign-in: 0 while its password is being checked (or it was refused for a disabled
    -- account), 1 once found wrong. A success deletes the rows of its username and address.
    failed   INTEGER NOT NULL DEFAULT 0 CHECK (failed IN (0, 1)),
    at       REAL    NOT NULL,  -- Unix time of the attempt
    CHECK ((scope = 'login') = (username IS NOT NULL)),
    CHECK (scope = 'login' OR failed = 0)
);

-- Counting a username's attempts from one address, and from all; an address's failures or
-- registrations; pruning by age.
CREATE INDEX IF NOT EXISTS attempts_by_username_address ON attempts (username, address, at);
CREATE INDEX IF NOT EXISTS attempts_by_username ON attempts (username, at);
CREATE INDEX IF NOT EXISTS attempts_by_address ON attempts (address, scope, failed, at);
CREATE INDEX IF NOT EXISTS attempts_by_age ON attempts (at);

PRAGMA user_version = 2;  -- throttle.SCHEMA_VERSION
