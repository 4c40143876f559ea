"""The registrar's import of completed courses, as CSV: read and checked in a worker thread
before the write turn (`parse_completed`), then recorded all or nothing in one transaction
(`import_completed`). Prerequisites are checked against what it records."""

import csv
import io
import re
import sqlite3
from collections import Counter
from dataclasses import dataclass

from app.common.errors import Invalid
from app.enrollment.audit.service import record
from app.enrollment.catalog.queries import course_ids_by_code
from app.enrollment.eligibility import queries
from app.enrollment.people.models import Identity
from app.enrollment.people.queries import existing_user_ids

COMPLETED_COLUMNS = ("user_id", "course_code", "term", "grade")


MAX_IMPORT_ROWS = 50_000


# A user id in the CSV: ASCII digits only (str.isdigit() also takes "²", which int() refuses, and
# "٩", which int() reads as 9), and no more of them than an id has.
CSV_USER_ID = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True)
class CompletedRows:
    """A CSV of completed courses as read, before any database is asked: its well-formed rows,
    (user_id, course_code, term, grade, line), and its bad lines, (line, why)."""

    rows: list[tuple[int, str, str, str, int]]
    problems: list[tuple[int, str]]


def parse_completed(text: str) -> CompletedRows:
    """Read the registrar's CSV of completed courses: a header line naming the columns,
    user_id,course_code and optionally term and grade (each once), then a row per student and
    course (each pair once). A UTF-8 byte order mark (Excel's "CSV UTF-8") is skipped; lines end
    with LF, CRLF or CR. A control character anywhere is refused, as in every other text field.
    No database here: the route runs this before its write turn."""
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    columns = "user_id,course_code[,term][,grade]"
    try:
        cells = next(reader, [])
    except csv.Error as exc:
        raise Invalid(f"line 1 is not CSV ({exc})", code="csv_header") from exc
    if not all(cell.isprintable() for cell in cells):
        raise Invalid(
            f"line 1: a control character in the header; the first line must name the columns:"
            f" {columns}",
            code="csv_header",
        )
    header = [cell.strip().lower() for cell in cells]
    if header[:2] != ["user_id", "course_code"] or not set(header) <= set(COMPLETED_COLUMNS):
        raise Invalid(f"the first line must name the columns: {columns}", code="csv_header")
    repeated = next((c for c, n in Counter(header).items() if n > 1), None)
    if repeated is not None:
        raise Invalid(
            f"line 1 names the column {repeated!r} twice: the first line names each column once,"
            f" {columns}",
            code="csv_header",
        )
    rows: list[tuple[int, str, str, str, int]] = []
    problems: list[tuple[int, str]] = []
    first_seen: dict[tuple[int, str], int] = {}
    while True:
        line = reader.line_num + 1  # where this record starts (a quoted value may span lines)
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a value over the reader's field limit, say: stop reading
            problems.append((line, f"not CSV ({exc})"))
            break
        control = next((i for i, cell in enumerate(cells) if not cell.isprintable()), None)
        values = [cell.strip() for cell in cells]  # when printable, only spaces are stripped
        if control is None and not any(values):
            continue  # a blank line
        if control is not None:
            column = header[control] if control < len(header) else f"value {control + 1}"
            why = f"{column} has a control character (a tab, a line break, a NUL, an escape...)"
            problems.append((line, why))
        elif (problem := _completed_row_problem(header, values)) is not None:
            problems.append((line, problem))
        elif (key := (int(values[0]), values[1])) in first_seen:
            why = (
                f"user {key[0]} and {key[1]} again, as on line {first_seen[key]}: one row per"
                " student and course"
            )
            problems.append((line, why))
        else:
            first_seen[key] = line
            row = dict(zip(header, values, strict=True))
            rows.append((*key, row.get("term", ""), row.get("grade", ""), line))
        if len(rows) + len(problems) > MAX_IMPORT_ROWS:
            raise Invalid(f"at most {MAX_IMPORT_ROWS} rows at a time", code="csv_too_long")
    if not rows and not problems:
        raise Invalid("no rows to import after the header line", code="csv_empty")
    return CompletedRows(rows=rows, problems=problems)


def _completed_row_problem(header: list[str], values: list[str]) -> str | None:
    """Why a row of the CSV (its values stripped) is malformed, or None."""
    if len(values) != len(header):
        return f"{len(values)} values, {len(header)} columns"
    user_id = values[0]
    if not CSV_USER_ID.fullmatch(user_id) or not 0 < int(user_id) < 2**63:
        return f"user_id {_shown(user_id)} is not a user id (ASCII digits 0-9)"
    if any(len(value) > 32 for value in values[2:]):
        return "term and grade are 32 characters at most"
    return None


def _shown(value: str, most: int = 24) -> str:
    """A value as an error names it, cut short (an error lists up to 20 of them)."""
    return repr(value if len(value) <= most else value[:most] + "...")


def import_completed(
    tx: sqlite3.Connection, caller: Identity, parsed: CompletedRows
) -> dict[str, int]:
    """The registrar imports completed courses (`parse_completed`). All rows or none: any bad row
    (malformed, repeated, an unknown course or user) is a 422 naming its line (up to 20 of them),
    and nothing is recorded. A row for a pair already recorded replaces it. The answer (as the
    route sends it: a keyed write records what its write returns) counts the rows."""
    courses = course_ids_by_code(tx)
    known = existing_user_ids(tx, user_ids={r[0] for r in parsed.rows})
    problems = list(parsed.problems)
    rows = []
    for user_id, code, term, grade, line in parsed.rows:
        if code not in courses:
            problems.append((line, f"no course {_shown(code)}"))
        elif user_id not in known:
            problems.append((line, f"user {user_id} not found"))
        else:
            rows.append((user_id, courses[code], term, grade))
    if problems:
        problems.sort()
        raise Invalid(
            f"{len(problems)} bad rows, nothing imported: "
            + "; ".join(f"line {line}: {why}" for line, why in problems[:20]),
            code="csv_rows",
        )
    queries.record_completed(tx, rows)
    record(tx, caller, "completed.import", rows=len(rows))
    return {"imported": len(rows)}
