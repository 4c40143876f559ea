-- Demo catalog for the enrollment service. Users come from share/seed/people.json (same ids as
-- the auth service). Capacities are small so that full sections and waitlists show at once.

INSERT INTO departments (id, code, name) VALUES
    (1, 'CPSC', 'Computer Science'),
    (2, 'MATH', 'Mathematics'),
    (3, 'ENGL', 'English');

INSERT INTO courses (id, department_id, code, title, credits) VALUES
    (1, 1, 'CPSC 131', 'Data Structures', 3),
    (2, 1, 'CPSC 315', 'Professional Ethics in Computing', 3),
    (3, 1, 'CPSC 332', 'File Structures and Database Systems', 3),
    (4, 1, 'CPSC 449', 'Back-End Engineering', 3),
    (5, 1, 'CPSC 474', 'Parallel and Distributed Computing', 3),
    (6, 2, 'MATH 150A', 'Calculus I', 4),
    (7, 2, 'MATH 338', 'Statistics Applied to Natural Sciences', 4),
    (8, 3, 'ENGL 101', 'Beginning College Writing', 3);

-- instructors: 3 kavery, 4 lchen, 5 jgarcia, 6 sokafor, 7 tnguyen, 8 ebrooks
INSERT INTO sections (id, course_id, section_number, instructor_id, capacity, waitlist_capacity,
                      frozen, room, schedule) VALUES
    (1, 4, 1, 3, 4, 15, 0, 'CS 102', 'MW 16:00-17:15'),
    (2, 4, 2, 3, 30, 15, 0, 'CS 104', 'TTh 19:00-20:15'),
    (3, 1, 1, 4, 3, 3, 0, 'CS 110A', 'MW 10:00-11:15'),
    (4, 1, 2, 4, 30, 15, 0, 'CS 110B', 'TTh 10:00-11:15'),
    (5, 3, 1, 5, 25, 15, 0, 'CS 300', 'MW 13:00-14:15'),
    (6, 5, 1, 5, 2, 15, 1, 'CS 408', 'F 09:00-11:45'),
    (7, 2, 1, 6, 40, 15, 0, 'CS 202', 'TTh 13:00-14:15'),
    (8, 6, 1, 7, 35, 15, 0, 'MH 121', 'MTWTh 08:00-08:50'),
    (9, 7, 1, 7, 30, 15, 0, 'MH 350', 'MW 11:30-12:45'),
    (10, 8, 1, 8, 22, 10, 0, 'H 210', 'TTh 16:00-17:15');

-- students are users 9..38. Section 1 (CPSC 449-01, 4 seats) is full with a waitlist of 3;
-- section 3 (CPSC 131-01, 3 seats, waitlist 3) is full with a full waitlist; section 6 is frozen
-- with a free seat and one student waiting. Ids give arrival order, so waitlist positions follow.
INSERT INTO enrollments (id, section_id, user_id, status, enrolled_at) VALUES
    (1, 1, 9, 'enrolled', '2026-08-01T09:00:00.000Z'),
    (2, 1, 10, 'enrolled', '2026-08-01T09:00:01.000Z'),
    (3, 1, 11, 'enrolled', '2026-08-01T09:00:02.000Z'),
    (4, 1, 12, 'enrolled', '2026-08-01T09:00:03.000Z'),
    (5, 1, 13, 'waitlisted', NULL),
    (6, 1, 14, 'waitlisted', NULL),
    (7, 1, 15, 'waitlisted', NULL),
    (8, 3, 16, 'enrolled', '2026-08-01T09:05:00.000Z'),
    (9, 3, 17, 'enrolled', '2026-08-01T09:05:01.000Z'),
    (10, 3, 18, 'enrolled', '2026-08-01T09:05:02.000Z'),
    (11, 3, 13, 'waitlisted', NULL),
    (12, 3, 19, 'waitlisted', NULL),
    (13, 3, 20, 'waitlisted', NULL),
    (14, 6, 21, 'enrolled', '2026-08-01T09:10:00.000Z'),
    (15, 6, 22, 'waitlisted', NULL),
    (16, 2, 9, 'enrolled', '2026-08-01T09:15:00.000Z'),
    (17, 2, 23, 'enrolled', '2026-08-01T09:15:01.000Z'),
    (18, 5, 10, 'enrolled', '2026-08-01T09:20:00.000Z'),
    (19, 5, 24, 'enrolled', '2026-08-01T09:20:01.000Z'),
    (20, 7, 25, 'enrolled', '2026-08-01T09:25:00.000Z'),
    (21, 8, 26, 'enrolled', '2026-08-01T09:30:00.000Z'),
    (22, 9, 27, 'enrolled', '2026-08-01T09:35:00.000Z'),
    (23, 10, 28, 'enrolled', '2026-08-01T09:40:00.000Z');
INSERT INTO enrollments (id, section_id, user_id, status, enrolled_at, dropped_at, drop_reason)
VALUES (24, 4, 29, 'dropped', '2026-08-01T09:45:00.000Z', '2026-08-03T12:00:00.000Z', 'dropped');

-- Eligibility (README "Eligibility rules"). Meeting times as the schedules say (R: Thursday).
INSERT INTO section_meetings (section_id, days, starts_at, ends_at) VALUES
    (1, 'MW', '16:00', '17:15'),
    (2, 'TR', '19:00', '20:15'),
    (3, 'MW', '10:00', '11:15'),
    (4, 'TR', '10:00', '11:15'),
    (5, 'MW', '13:00', '14:15'),
    (6, 'F', '09:00', '11:45'),
    (7, 'TR', '13:00', '14:15'),
    (8, 'MTWR', '08:00', '08:50'),
    (9, 'MW', '11:30', '12:45'),
    (10, 'TR', '16:00', '17:15');
-- MATH 338 needs MATH 150A.
INSERT INTO course_prerequisites (course_id, prerequisite_id) VALUES (7, 6);
-- ajohnson (9) has completed CPSC 131 and MATH 150A; lsmith (10) CPSC 131.
INSERT INTO completed_courses (user_id, course_id, term, grade) VALUES
    (9, 1, '2025-FA', 'A'), (9, 6, '2025-FA', 'B+'), (10, 1, '2026-SP', 'A-');
-- A hold on the last student (38): unpaid fees.
INSERT INTO holds (user_id, reason, placed_by, placed_at) VALUES
    (38, 'unpaid fees: see the bursar', 1, '2026-08-01T08:00:00.000Z');
-- Terms: this fall's (the demo's sections; no windows or deadlines), and next spring's, with
-- registration windows (seniors first, then everyone) and add/drop deadlines, and one section.
INSERT INTO terms (id, code, name, add_deadline, drop_deadline) VALUES
    (1, '2026-FA', 'Fall 2026', NULL, NULL),
    (2, '2027-SP', 'Spring 2027', '2027-01-29T23:59:59.000Z', '2027-02-12T23:59:59.000Z');
UPDATE sections SET term_id = 1;
INSERT INTO registration_windows (id, term_id, opens_at, closes_at, class_level) VALUES
    (1, 2, '2027-01-04T16:00:00.000Z', '2027-01-29T23:59:59.000Z', 'senior'),
    (2, 2, '2027-01-06T16:00:00.000Z', '2027-01-29T23:59:59.000Z', NULL);
INSERT INTO sections (id, course_id, section_number, instructor_id, capacity, waitlist_capacity,
                      frozen, room, schedule, term_id) VALUES
    (11, 4, 3, NULL, 30, 15, 0, 'CS 102', 'MW 16:00-17:15', 2);
INSERT INTO section_meetings (section_id, days, starts_at, ends_at) VALUES (11, 'MW', '16:00', '17:15');
UPDATE users SET class_level = 'senior' WHERE id IN (9, 10);
