"""README.md's table of error codes, written from the services' catalogs (app/common/errors.py,
app/enrollment/codes.py, app/auth/codes.py) between its two marker lines:

    .venv/bin/python -m app.error_table

tests/test_error_codes.py fails while the README's table is not what this writes.
"""

from pathlib import Path

from app.auth.codes import CODES as AUTH_CODES
from app.common.errors import COMMON_CODES, Catalog
from app.enrollment.codes import CODES as ENROLLMENT_CODES

README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN = "<!-- error codes: written by `python -m app.error_table` from the catalogs; edit those -->"
END = "<!-- end of error codes -->"

SERVICES: dict[str, Catalog] = {"enrollment": ENROLLMENT_CODES, "auth": AUTH_CODES}


def table() -> str:
    """The table, one row per status and code: which service answers it, and what it means."""
    rows = [
        (status, code, "both" if (status, code) in COMMON_CODES else service, meaning)
        for service, catalog in SERVICES.items()
        for (status, code), meaning in catalog.items()
        if service == "enrollment" or (status, code) not in COMMON_CODES
    ]
    lines = ["| status | code | service | meaning |", "|---|---|---|---|"]
    for status, code, service, meaning in sorted(rows, key=lambda row: row[0]):
        lines.append(f"| {status} | `{code}` | {service} | {meaning} |")
    return "\n".join(lines)


def with_table(text: str) -> str:
    """`text` (README.md) with the table between its markers written anew."""
    head, begin, rest = text.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"README.md needs the two marker lines:\n{BEGIN}\n{END}")
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> None:
    text = README.read_text()
    written = with_table(text)
    if written != text:
        README.write_text(written)
    print(f"{README}: the table of error codes is {'written' if written != text else 'current'}")


if __name__ == "__main__":
    main()
