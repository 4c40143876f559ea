"""Whole-database copies for tests and benchmarks."""

import sqlite3
from pathlib import Path


def copy_database(source: Path, target: Path) -> None:
    """Make `target` hold what `source` holds, WAL included, through SQLite's backup API: safe
    while servers keep connections to `target` open (they see the new content at their next
    transaction)."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
