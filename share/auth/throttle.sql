-- The auth service's abuse counts (app/auth/throttle.py): one row per recent attempt. NOT on
-- LiteFS: a plain file that every auth node on this host opens read-write (AUTH_THROTTLE_DATABASE).
-- Disposable: deleting the file only forgets recent failures. Rows older than the longest window
-- are deleted as new ones arrive.

CREATE TABLE IF NOT EXISTS attempts (
    id    INTEGER PRIMARY KEY,
    scope TEXT    NOT NULL
          CHECK (scope IN ('login_username', 'login_address', 'registration_address')),
    -- SHA-256 of the username or client address: the file never holds what someone typed (a
    -- password typed into the username field, say).
    key   TEXT    NOT NULL,
    at    REAL    NOT NULL  -- Unix time of the attempt
);

-- Counting one username's or address's attempts within a window; pruning by age.
CREATE INDEX IF NOT EXISTS attempts_by_key ON attempts (scope, key, at);
CREATE INDEX IF NOT EXISTS attempts_by_age ON attempts (at);
