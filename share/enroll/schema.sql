-- Enrollment service schema. Idempotent: every statement is IF NOT EXISTS.
-- Waitlist positions are not stored: a waitlisted row's position is its rank by `id` (arrival
-- order) among the section's waitlisted rows, so positions are 1..n without gaps or ties by
-- construction, whatever joins, leaves or promotions happen (SPEC §2 rule 5).

CREATE TABLE IF NOT EXISTS departments (
    id   INTEGER PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS users (
    id         INTEGER PRIMARY KEY,
    username   TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL DEFAULT '',
    last_name  TEXT NOT NULL DEFAULT '',
    roles      TEXT NOT NULL DEFAULT 'student', -- comma-separated, as last seen in a token
    credit_limit INTEGER CHECK (credit_limit BETWEEN 0 AND 40), -- NULL: the default (18)
    class_level TEXT CHECK (class_level IN
        ('freshman', 'sophomore', 'junior', 'senior', 'graduate'))  -- for registration windows
);

CREATE TABLE IF NOT EXISTS courses (
    id            INTEGER PRIMARY KEY,
    department_id INTEGER NOT NULL REFERENCES departments(id),
    code          TEXT NOT NULL UNIQUE,            -- e.g. 'CPSC 449'
    title         TEXT NOT NULL,
    credits       INTEGER NOT NULL DEFAULT 3 CHECK (credits BETWEEN 0 AND 12)
);

CREATE TABLE IF NOT EXISTS sections (
    id                INTEGER PRIMARY KEY,
    course_id         INTEGER NOT NULL REFERENCES courses(id),
    section_number    INTEGER NOT NULL CHECK (section_number > 0),
    instructor_id     INTEGER REFERENCES users(id),
    capacity          INTEGER NOT NULL CHECK (capacity >= 0),
    waitlist_capacity INTEGER NOT NULL DEFAULT 15 CHECK (waitlist_capacity >= 0),
    frozen            INTEGER NOT NULL DEFAULT 0 CHECK (frozen IN (0, 1)),
    room              TEXT NOT NULL DEFAULT '',
    schedule          TEXT NOT NULL DEFAULT '',
    deleted_at        TEXT,                        -- set by DELETE: hidden, history kept
    term_id           INTEGER REFERENCES terms(id), -- NULL: in no term (no windows, deadlines)
    -- What a freed seat does (issue 27): 'auto' gives it to the head of the waitlist at once;
    -- 'offer' holds it for the head, who has claim_seconds to accept (seat_offers).
    waitlist_mode     TEXT NOT NULL DEFAULT 'auto' CHECK (waitlist_mode IN ('auto', 'offer')),
    claim_seconds     INTEGER NOT NULL DEFAULT 86400 CHECK (claim_seconds BETWEEN 1 AND 1209600)
);
CREATE UNIQUE INDEX IF NOT EXISTS sections_live_number
    ON sections(course_id, section_number) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS sections_instructor ON sections(instructor_id);

-- One row per attempt: re-enrolling after a drop adds a new row, so drops stay listed.
CREATE TABLE IF NOT EXISTS enrollments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, so
                                                    -- arrival order is id order
    section_id  INTEGER NOT NULL REFERENCES sections(id),
    user_id     INTEGER NOT NULL REFERENCES users(id),
    status      TEXT NOT NULL CHECK (status IN ('enrolled', 'waitlisted', 'dropped')),
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    enrolled_at TEXT,           -- when a seat was taken (directly or by promotion)
    dropped_at  TEXT,
    drop_reason TEXT CHECK (drop_reason IN
        ('dropped', 'administrative', 'left_waitlist', 'section_deleted', 'offer_declined',
         'offer_expired', 'swapped'))
);
-- Rule 3 as a constraint: at most one live (enrolled or waitlisted) row per student and section.
CREATE UNIQUE INDEX IF NOT EXISTS enrollments_one_live
    ON enrollments(section_id, user_id) WHERE status IN ('enrolled', 'waitlisted');
CREATE INDEX IF NOT EXISTS enrollments_section_status ON enrollments(section_id, status, id);
CREATE INDEX IF NOT EXISTS enrollments_user_status ON enrollments(user_id, status);

-- Who did what, when: every registrar or instructor action, written in the same transaction as
-- the action itself (so an action and its audit entry land together or not at all).
CREATE TABLE IF NOT EXISTS audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    actor_id   INTEGER NOT NULL,
    actor_role TEXT NOT NULL,
    action     TEXT NOT NULL,
    course_id  INTEGER,
    section_id INTEGER,
    user_id    INTEGER,
    details    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS audit_log_actor ON audit_log(actor_id, id);
CREATE INDEX IF NOT EXISTS audit_log_section ON audit_log(section_id, id);

-- Eligibility (README "Eligibility rules"): what a registrar relies on before anyone is seated.

-- A term (a semester): its sections, its credit limits, its registration windows and deadlines.
-- Times are UTC, 'YYYY-MM-DDTHH:MM:SS.sssZ' like every timestamp here, so they compare as text.
CREATE TABLE IF NOT EXISTS terms (
    id            INTEGER PRIMARY KEY,
    code          TEXT NOT NULL UNIQUE CHECK (length(code) BETWEEN 1 AND 16),
    name          TEXT NOT NULL DEFAULT '',
    add_deadline  TEXT,  -- after it, no student adds a section of the term (NULL: none)
    drop_deadline TEXT   -- after it, no student drops or leaves a waitlist (NULL: none)
);

-- When a group of students may enroll in a term's sections: those of a class level, the students
-- listed in window_students, or (neither given) everyone. A term without windows is open.
CREATE TABLE IF NOT EXISTS registration_windows (
    id          INTEGER PRIMARY KEY,
    term_id     INTEGER NOT NULL REFERENCES terms(id),
    opens_at    TEXT NOT NULL,
    closes_at   TEXT NOT NULL CHECK (closes_at > opens_at),
    class_level TEXT CHECK (class_level IN
        ('freshman', 'sophomore', 'junior', 'senior', 'graduate'))
);
CREATE INDEX IF NOT EXISTS registration_windows_term ON registration_windows(term_id);
CREATE TABLE IF NOT EXISTS window_students (
    window_id INTEGER NOT NULL REFERENCES registration_windows(id),
    user_id   INTEGER NOT NULL REFERENCES users(id),
    PRIMARY KEY (window_id, user_id)
) WITHOUT ROWID;

-- A hold (unpaid fees, a missing document) stops a student enrolling or joining a waitlist until
-- the registrar lifts it; dropping stays open. Lifted holds stay, for the record.
CREATE TABLE IF NOT EXISTS holds (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id   INTEGER NOT NULL REFERENCES users(id),
    reason    TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 200),
    placed_by INTEGER NOT NULL,
    placed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    lifted_by INTEGER,
    lifted_at TEXT
);
CREATE INDEX IF NOT EXISTS holds_active ON holds(user_id) WHERE lifted_at IS NULL;

-- A course's prerequisites: courses a student must have completed first.
CREATE TABLE IF NOT EXISTS course_prerequisites (
    course_id       INTEGER NOT NULL REFERENCES courses(id),
    prerequisite_id INTEGER NOT NULL REFERENCES courses(id) CHECK (prerequisite_id <> course_id),
    PRIMARY KEY (course_id, prerequisite_id)
) WITHOUT ROWID;

-- Courses a student has completed (the registrar imports them, as CSV, from the record system).
CREATE TABLE IF NOT EXISTS completed_courses (
    user_id   INTEGER NOT NULL REFERENCES users(id),
    course_id INTEGER NOT NULL REFERENCES courses(id),
    term      TEXT NOT NULL DEFAULT '',
    grade     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_id, course_id)
) WITHOUT ROWID;

-- When a section meets: days (M T W R F S U, in that order) and a time of day, HH:MM, start
-- before end. Two sections conflict when they share a day and their times overlap.
CREATE TABLE IF NOT EXISTS section_meetings (
    id         INTEGER PRIMARY KEY,
    section_id INTEGER NOT NULL REFERENCES sections(id),
    days       TEXT NOT NULL CHECK (length(days) BETWEEN 1 AND 7),
    starts_at  TEXT NOT NULL CHECK (starts_at GLOB '[0-2][0-9]:[0-5][0-9]'),
    ends_at    TEXT NOT NULL CHECK (ends_at GLOB '[0-2][0-9]:[0-5][0-9]' AND ends_at > starts_at)
);
CREATE INDEX IF NOT EXISTS section_meetings_section ON section_meetings(section_id);

-- A permit lets one student into one section past the rules it names (waives: a comma-separated
-- subset of capacity, prerequisite, time_conflict, credit_limit), granted by the registrar or
-- the section's instructor. Revoked permits stay, for the record.
CREATE TABLE IF NOT EXISTS permits (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    section_id INTEGER NOT NULL REFERENCES sections(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    waives     TEXT NOT NULL,
    granted_by INTEGER NOT NULL,
    granted_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS permits_live ON permits(user_id, section_id) WHERE revoked_at IS NULL;

-- The outbox of notifications (issue 27): what a person must hear about, written in the
-- transaction of the change that causes it (app/enrollment/notifications), read by that person in
-- GET /users/{id}/notifications and delivered by mail by the notifier (app/notifier), which marks
-- each delivered here. `subject` and `body` are written with the event, so the mail says what
-- was true then; the address is asked of the auth service at delivery (the owner of accounts).
CREATE TABLE IF NOT EXISTS notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id),
    kind         TEXT NOT NULL CHECK (kind IN ('enrolled', 'waitlisted', 'promoted',
                 'dropped_by_staff', 'hold_placed', 'hold_lifted', 'section_deleted',
                 'offered', 'offer_expired', 'swapped')),
    section_id   INTEGER REFERENCES sections(id),  -- NULL for a hold
    subject      TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    read_at      TEXT,                      -- NULL: unread
    -- delivery by the notifier: NULL until the mail server accepted the message
    delivered_at TEXT,
    attempts     INTEGER NOT NULL DEFAULT 0,  -- failed attempts so far
    next_attempt REAL NOT NULL DEFAULT 0,     -- Unix time before which it is not tried again
    last_error   TEXT
);
CREATE INDEX IF NOT EXISTS notifications_by_user ON notifications(user_id, id);
CREATE INDEX IF NOT EXISTS notifications_undelivered ON notifications(next_attempt, id)
    WHERE delivered_at IS NULL;

-- Seat offers (issue 27): in a section whose waitlist_mode is 'offer', a freed seat is held for
-- the student first in line (their enrollment row stays 'waitlisted', at its position) until they
-- accept (the row becomes 'enrolled'), decline, or expires_at passes (the row is dropped, reason
-- offer_declined / offer_expired, and the next in line is offered the seat). An open offer holds
-- its seat: a section's seats in use are its enrolled rows plus its open offers.
CREATE TABLE IF NOT EXISTS seat_offers (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id INTEGER NOT NULL REFERENCES enrollments(id),
    section_id    INTEGER NOT NULL REFERENCES sections(id),
    user_id       INTEGER NOT NULL REFERENCES users(id),
    status        TEXT NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'accepted', 'declined', 'expired', 'withdrawn')),
    offered_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    expires_at    TEXT NOT NULL,
    closed_at     TEXT           -- when it stopped being open
);
-- At most one open offer per waitlist place.
CREATE UNIQUE INDEX IF NOT EXISTS seat_offers_one_open ON seat_offers(enrollment_id)
    WHERE status = 'open';
CREATE INDEX IF NOT EXISTS seat_offers_open_by_section ON seat_offers(section_id)
    WHERE status = 'open';
CREATE INDEX IF NOT EXISTS seat_offers_due ON seat_offers(expires_at) WHERE status = 'open';
CREATE INDEX IF NOT EXISTS seat_offers_by_user ON seat_offers(user_id, id);

-- idempotency_keys (Idempotency-Key's answers) is share/common/idempotency.sql, the same in
-- both services' databases; init_db applies it after this file.

-- Identifies the file as this service's database, at this schema version; the service refuses to
-- start on anything else.
PRAGMA application_id = 1162760780;  -- 'ENRL'
PRAGMA user_version = 6;  -- 2: eligibility, 3: terms, 4: idempotency_keys, 5: notifications,
-- 6: seat offers and swaps
-- (app/enrollment/init_db.py migrates)
