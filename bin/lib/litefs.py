"""Where LiteFS is mounted: for bin/auth-node (stale mounts of a crashed node) and the test
harness (nothing left mounted after a test)."""

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
