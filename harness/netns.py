"""Network namespaces for a thread: harness/multihost.py's hosts, and the bridge's namespace
where its Prometheus runs (harness/multihost_watch.py)."""

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextmanager
def in_namespace(name: str) -> Iterator[None]:
    """Run the block with this thread in network namespace `name`: sockets opened in it (httpx,
    asyncio) belong to that namespace, and stay there after the block."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{name}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
