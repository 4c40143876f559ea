"""Where LiteFS is mounted: for bin/auth-node (stale mounts of a crashed node) and the test
harness (nothing left mounted after a test)."""

import os
import subprocess
from pathlib import Path


def litefs_mounts(under: Path) -> list[Path]:
    """The LiteFS FUSE mounts at or below `under`."""
    import psutil  # here, not above: bin/auth-node imports this before it runs under .venv

    root = str(under)
    return [
        Path(part.mountpoint)
        for part in psutil.disk_partitions(all=True)
        if part.device == "litefs"
        and (part.mountpoint == root or part.mountpoint.startswith(root + "/"))
    ]


FUSECTL = Path("/sys/fs/fuse/connections")


def abort_litefs_connections(under: Path) -> list[int]:
    """Abort the FUSE connection of every LiteFS mount at or below `under`; the connections
    aborted. A process blocked on a mount whose LiteFS was killed mid-request (a page it waits
    for, in the D state) does not die of SIGKILL: the kernel waits for LiteFS's answer until the
    connection is aborted, and then fails the request. Mounts fusectl (root) if it is not. Reads
    /proc/self/mountinfo for each mount's device, never the mount itself, which may hang."""
    root = str(under)
    devices = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields, _, after = line.partition(" - ")
        parts, source = fields.split(), after.split()
        mountpoint = parts[4].replace("\\040", " ")
        if (
            len(source) > 1
            and source[1] == "litefs"
            and (mountpoint == root or mountpoint.startswith(root + "/"))
        ):
            major, _, minor = parts[2].partition(":")
            devices.append(os.makedev(int(major), int(minor)))
    if devices and not os.path.ismount(FUSECTL):
        subprocess.run(["mount", "-t", "fusectl", "none", str(FUSECTL)], capture_output=True)
    aborted = []
    for device in devices:
        try:
            (FUSECTL / str(device) / "abort").write_text("1")
            aborted.append(device)
        except OSError:  # gone meanwhile, or no fusectl: nothing more to do here
            continue
    return aborted
