"""The registrar's CSV import of completed courses (issue 24, "CSV import"): user ids are ASCII
digits only, control characters are refused as in every other text field, Excel's UTF-8 byte
order mark is accepted, a repeated row or header column is a 422 naming its line, and the body
limit of this route fits the 50,000 rows it allows. A refused import records nothing."""

import pytest

from tests.enrollment.helpers import REGISTRAR

MAX_ROWS = 50_000
MAX_BODY = 4 * 1024 * 1024  # this route's body limit: 4 MiB


def post_csv(api, csv: str | bytes):
    return api.as_(REGISTRAR).post(
        "/completed-courses", content=csv, headers={"Content-Type": "text/csv"}
    )


def refused(api, csv: str | bytes, code: str, *named: str) -> str:
    """Post the CSV, expect a 422 with this code naming each of `named`, and nothing written."""
    before = api.dump()
    reply = post_csv(api, csv)
    assert (reply.status_code, reply.json().get("code")) == (422, code), reply.text
    detail = reply.json()["detail"]
    for words in named:
        assert words in detail, detail
    assert api.dump() == before
    return detail


@pytest.mark.parametrize(
    "user_id",
    [
        "\u00b2",  # superscript two: isdigit() said yes, int() failed (500)
        "\u0669",  # Arabic-Indic nine: imported as user 9
        "\uff19",  # fullwidth nine: imported as user 9
        "1\u00b2",
        "1" + "0" * 4400,  # more digits than int() converts (500)
    ],
)
def test_a_user_id_in_anything_but_ascii_digits_is_a_422_naming_its_line(api, user_id):
    csv = f"user_id,course_code\n29,CPSC 131\n{user_id},CPSC 131\n"
    refused(api, csv, "csv_rows", "line 3: user_id")


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("29,CPSC 131,2025\x00FA,A", "term"),
        ("29,CPSC 131,2025-FA,\x1b[31mA", "grade"),
        ("\x1f29,CPSC 131,2025-FA,A", "user_id"),  # stripped as whitespace: imported as 29
        ("29,CPSC 131,2025-FA\u2028,A", "term"),
        ('29,"CPSC\n131",2025-FA,A', "course_code"),  # a line break inside a quoted value
    ],
)
def test_a_control_character_is_a_422_naming_its_line_and_column(api, row, column):
    csv = f"user_id,course_code,term,grade\n30,CPSC 131,2025-FA,B\n{row}\n"
    refused(api, csv, "csv_rows", f"line 3: {column}", "control character")


def test_a_control_character_in_the_header_is_a_422(api):
    # str.strip() took the unit separator for whitespace: the header passed as `grade`
    refused(api, "user_id,course_code,grade\x1f\n29,CPSC 131,A\n", "csv_header", "line 1")


def test_a_utf8_byte_order_mark_is_accepted(api):
    """Excel's "CSV UTF-8" starts the file with EF BB BF, and ends lines with CRLF."""
    csv = "\ufeffuser_id,course_code,term,grade\r\n29,CPSC 131,2025-FA,A\r\n".encode()
    reply = post_csv(api, csv)
    assert (reply.status_code, reply.json()) == (200, {"imported": 1}), reply.text
    completed = api.as_(REGISTRAR).get("/users/29/completed-courses").json()
    assert [(c["course_code"], c["term"], c["grade"]) for c in completed] == [
        ("CPSC 131", "2025-FA", "A")
    ]


def test_carriage_returns_alone_end_lines_too(api):
    """Old Macintosh CSV: lines end with CR only."""
    reply = post_csv(api, "user_id,course_code\r29,CPSC 131\r30,CPSC 131\r")
    assert (reply.status_code, reply.json()) == (200, {"imported": 2}), reply.text


def test_a_repeated_row_is_a_422_naming_both_lines(api):
    csv = "user_id,course_code,grade\n29,CPSC 131,A\n30,CPSC 131,B\n29,CPSC 131,C\n"
    refused(api, csv, "csv_rows", "line 4:", "line 2")


def test_the_same_row_twice_is_a_422_too(api):
    refused(api, "user_id,course_code\n29,CPSC 131\n29,CPSC 131\n", "csv_rows", "line 3:")


@pytest.mark.parametrize(
    ("csv", "column"),
    [
        ("user_id,course_code,grade,grade\n29,CPSC 131,A,B\n", "grade"),  # was: B
        ("user_id,course_code,user_id\n29,CPSC 131,30\n", "user_id"),  # was: user 30
    ],
)
def test_a_repeated_header_column_is_a_422_naming_it(api, csv, column):
    refused(api, csv, "csv_header", "line 1", repr(column))


def test_a_value_too_long_for_the_csv_reader_is_a_422_naming_its_line(api):
    refused(api, "user_id,course_code\n29,CPSC 131\n30," + "A" * 200_000 + "\n", "csv_rows",
            "line 3")  # fmt: skip


def realistic_rows(api, count: int) -> str:
    """`count` distinct completed courses of students known here, as a record system exports
    them (about 30 bytes a row)."""
    codes = [r[0] for r in api.db().execute("SELECT code FROM courses ORDER BY id")]
    students = range(100_000, 100_000 + -(-count // len(codes)))
    with api.db() as conn:
        conn.executemany(
            "INSERT INTO users (id, username) VALUES (?, ?)", [(s, f"s{s}") for s in students]
        )
    pairs = [(s, code) for s in students for code in codes][:count]
    return "user_id,course_code,term,grade\r\n" + "".join(
        f"{s},{code},2025-FA,{'AB'[s % 2]}{'+-'[s % 2]}\r\n" for s, code in pairs
    )


def test_the_most_rows_allowed_fit_the_body_limit(api):
    csv = realistic_rows(api, MAX_ROWS)
    assert len(csv.encode()) < MAX_BODY
    reply = post_csv(api, csv)
    assert (reply.status_code, reply.json()) == (200, {"imported": MAX_ROWS}), reply.text
    with api.db() as conn:
        imported = "SELECT COUNT(*) FROM completed_courses WHERE user_id >= 100000"
        assert conn.execute(imported).fetchone()[0] == MAX_ROWS


def test_one_row_more_is_a_422_and_imports_nothing(api):
    csv = realistic_rows(api, MAX_ROWS + 1)
    refused(api, csv, "csv_too_long", f"at most {MAX_ROWS} rows")


def test_a_body_over_the_routes_limit_is_413(api):
    csv = "user_id,course_code\n" + "29,CPSC 131\n" * (MAX_BODY // 12 + 1)
    before = api.dump()
    reply = post_csv(api, csv)
    assert (reply.status_code, reply.json()["code"]) == (413, "body_too_large"), reply.text
    assert "4096 KiB" in reply.json()["detail"]
    assert api.dump() == before
