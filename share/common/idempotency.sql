-- The table both services keep their Idempotency-Key answers in (app/common/idempotency.py), each
-- in its own database (share/enroll/schema.sql and share/auth/schema.sql name it; each service's
-- init_db applies this file after its schema). Idempotent: IF NOT EXISTS.
--
-- The answer to each caller's key, written in the transaction of the change it answers, so a
-- retry with the key replays it instead of making the change again. `caller` is `user:<id>`, or `request:<HMAC of the request>` for a request with
-- no signed-in caller. Ids grow with time, so the oldest records are the table's first rows,
-- which each keyed write purges a few of once they are older than the setting (24 hours).
CREATE TABLE IF NOT EXISTS idempotency_keys (
    id          INTEGER PRIMARY KEY,
    caller      TEXT    NOT NULL,
    key         TEXT    NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    method      TEXT    NOT NULL,
    path        TEXT    NOT NULL,
    body_digest BLOB    NOT NULL,  -- SHA-256 (or HMAC) of the canonical request body
    status      INTEGER NOT NULL,  -- the answer: status, its own headers (JSON), body as sent
    headers     TEXT,
    body        BLOB    NOT NULL,  -- sealed (AES-GCM) where it holds tokens
    created_at  REAL    NOT NULL,  -- Unix time
    UNIQUE (caller, key)
);
