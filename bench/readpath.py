"""Read-path throughput with wrk (Debian's wrk, a separate process on loopback, bounded by time):
the same GET sent to one instance, to all three at once, and through the gateway."""

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk(url: str, headers: dict[str, str], *, seconds: int, connections: int) -> dict:
    """One wrk run: requests/s, latency percentiles, non-2xx answers and socket errors (connect,
    read, write, timeout), any of which fails the run (bench/run.py)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package wrk); bin/bench installs it")
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 30).stdout
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    result = {
        "url": url,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
        "non_2xx": int(m.group(1))
        if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out))
        else 0,
        "errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
    }
    for p in ("50", "99"):
        m = re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)
        result[f"p{p}_ms"] = round(_ms(m.group(1)), 2) if m else None
    return result


def wrk_spread(urls: list[str], headers: dict[str, str], *, seconds: int, connections: int) -> dict:
    """wrk against several instances at once (connections split evenly); throughput summed."""
    share = max(1, connections // len(urls))
    with ThreadPoolExecutor(len(urls)) as pool:
        runs = list(pool.map(lambda u: wrk(u, headers, seconds=seconds, connections=share), urls))
    return {
        "url": " + ".join(urls),
        "requests_per_s": round(sum(r["requests_per_s"] for r in runs), 1),
        "requests": sum(r["requests"] for r in runs),
        "non_2xx": sum(r["non_2xx"] for r in runs),
        "errors": sum(r["errors"] for r in runs),
        "p50_ms": max(r["p50_ms"] or 0 for r in runs),
        "p99_ms": max(r["p99_ms"] or 0 for r in runs),
    }
