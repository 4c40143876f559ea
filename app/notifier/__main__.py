"""python -m app.notifier: deliver the notifications outbox until SIGINT/SIGTERM (bin/notifier
runs it, supervised). Settings: NOTIFIER_* (app/notifier/settings.py)."""

import json
import logging.config
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import httpx
from prometheus_client import start_http_server

from app.common.observe import KEEP_ALIVE
from app.notifier.delivery import (
    CpuPressure,
    Notifier,
    auth_addresses,
    hold_the_delivery_lock,
)
from app.notifier.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("notifier")


def lower_priority(priority: str) -> None:
    """Take the CPU share `priority` names (Settings.cpu_priority) for the calling thread (on
    Linux a scheduling policy and a niceness are a thread's own)."""
    if priority == "idle":
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif priority == "low":
        os.nice(10)


def main() -> int:
    logging.config.dictConfig(json.loads((ROOT / "etc" / "logging.json").read_text()))
    settings = load_settings()
    notifier: Notifier | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        if notifier is None:
            raise SystemExit(0)  # still waiting for the delivery lock: nothing to finish
        notifier.stopping = True  # the message being sent is finished and marked first

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    hold_the_delivery_lock(settings.database)
    if settings.metrics_port is not None:
        start_http_server(settings.metrics_port, addr="127.0.0.1")
    # Seats before mail when the cores are busy: the messages are built and sent on a thread of
    # lower priority. This thread, which marks each delivery holding the database's write lock,
    # keeps the services' own: at SCHED_IDLE it was kept off the cores while holding the lock by
    # the very writers waiting for it (priority inversion).
    sender = ThreadPoolExecutor(
        1, "sender", initializer=lower_priority, initargs=(settings.cpu_priority,)
    )
    with httpx.Client(trust_env=False, limits=KEEP_ALIVE) as client, sender:
        addresses = auth_addresses(settings, client)
        notifier = Notifier(
            settings,
            addresses=addresses,
            prefetch=addresses.prefetch,
            sender=sender,
            pressure=CpuPressure(),
        )
        log.info(
            "notifier delivering from %s to %s:%s",
            settings.database,
            settings.smtp_host,
            settings.smtp_port,
        )
        try:
            while not notifier.stopping:
                if notifier.run_once() == 0:
                    time.sleep(settings.poll_seconds)
        finally:
            notifier.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
