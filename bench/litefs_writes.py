"""What a write costs through LiteFS against a plain WAL file on the same disk (issue 29), in one
run: one writer, small transactions (BEGIN IMMEDIATE, a count, an insert, COMMIT), as the
enrollment service's writes are shaped, and the same writes batched several to a transaction.

  sudo .venv/bin/python -m bench.litefs_writes [--writes 2000] [--batch 10]

LiteFS runs as one node of its own (static lease, this node the primary; no replica, so what is
measured is the mount, not the network) in a temporary directory; LiteFS must be built
(.tools/bin/litefs: ./bin/start or ./bin/test builds it) and it needs root and /dev/fuse. Prints
writes per second and the time of each, per place, synchronous setting and batch size."""

import argparse
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bin.lib.litefs import litefs_mounts
from harness.procs import ROOT

LITEFS = ROOT / ".tools" / "bin" / "litefs"
READY_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def writes_per_second(database: Path, *, writes: int, batch: int, synchronous: str) -> float:
    """`writes` inserts, `batch` to a transaction, each transaction as the service makes one."""
    database.unlink(missing_ok=True)
    db = sqlite3.connect(database, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute("CREATE TABLE seats (id INTEGER PRIMARY KEY, student INTEGER, at TEXT)")
        started = time.perf_counter()
        for first in range(0, writes, batch):
            db.execute("BEGIN IMMEDIATE")
            for student in range(first, min(first + batch, writes)):
                db.execute("SELECT count(*) FROM seats WHERE student = ?", (student,)).fetchone()
                db.execute(
                    "INSERT INTO seats (student, at) VALUES (?, datetime('now'))", (student,)
                )
            db.execute("COMMIT")
        return writes / (time.perf_counter() - started)
    finally:
        db.close()


class LiteFSNode:
    """One LiteFS node, primary by static lease, mounted under `base` until closed."""

    def __init__(self, base: Path) -> None:
        self.mount = base / "mnt"
        base.mkdir()
        port = free_port()
        config = base / "litefs.yml"
        config.write_text(
            f'fuse:\n  dir: "{self.mount}"\n'
            f'data:\n  dir: "{base / "data"}"\n'
            f'http:\n  addr: "127.0.0.1:{port}"\n'
            "lease:\n  type: static\n  candidate: true\n  hostname: bench\n"
            f'  advertise-url: "http://127.0.0.1:{port}"\n'
        )
        self.log = (base / "litefs.log").open("wb")
        self.proc = subprocess.Popen(
            [str(LITEFS), "mount", "-config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + READY_SECONDS
        while not self._primary(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                sys.exit(f"LiteFS did not become primary: see {base / 'litefs.log'}")
            time.sleep(0.05)

    def _primary(self, port: int) -> bool:
        if self.mount not in litefs_mounts(self.mount.parent):
            return False
        try:
            info = httpx.get(f"http://127.0.0.1:{port}/info", timeout=1, trust_env=False)
            return bool(info.json().get("isPrimary"))
        except (httpx.HTTPError, ValueError):
            return False

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.mount in litefs_mounts(self.mount.parent):
            subprocess.run(["fusermount3", "-uz", str(self.mount)], check=False)
        self.log.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.litefs_writes")
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=10, help="writes per transaction, batched")
    args = parser.parse_args(argv)
    if not LITEFS.exists():
        sys.exit(f"{LITEFS} is missing: ./bin/start or ./bin/test builds it")
    rows = []
    with tempfile.TemporaryDirectory(prefix="litefs-writes-", dir=ROOT / "var") as tmp:
        base = Path(tmp)
        node = LiteFSNode(base / "litefs")
        try:
            places = {"plain WAL file": base / "plain.db", "LiteFS mount": node.mount / "w.db"}
            for synchronous in ("NORMAL", "FULL"):
                for batch in (1, args.batch):
                    for place, database in places.items():
                        rate = writes_per_second(
                            database, writes=args.writes, batch=batch, synchronous=synchronous
                        )
                        rows.append((place, synchronous, batch, rate))
                        print(
                            f"{place:<15} synchronous={synchronous:<6} {batch:>3} a transaction:"
                            f" {rate:8.0f} writes/s ({1e6 / rate:7.0f} µs each)",
                            flush=True,
                        )
        finally:
            node.close()
    print("\nLiteFS / plain file:")
    for synchronous in ("NORMAL", "FULL"):
        for batch in (1, args.batch):
            plain, litefs = (
                rate for _, s, b, rate in rows if s == synchronous and b == batch
            )  # fmt: skip
            print(f"  synchronous={synchronous:<6} {batch:>3} a transaction: {litefs / plain:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
