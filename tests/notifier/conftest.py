import os

import pytest


@pytest.fixture(autouse=True)
def _no_notifier_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Settings fall back to NOTIFIER_* variables; a developer's shell must not change the tests.
    for name in list(os.environ):
        if name.startswith("NOTIFIER_"):
            monkeypatch.delenv(name)
