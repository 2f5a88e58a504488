"""Fixtures of the fault tests: those of the sync engine tests (an integration on the shared
1C emulator, SQL helpers, the hooked event bus), the API tests' sidecar and client, and
waiting for a condition."""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.api.conftest import api, sidecar  # noqa: F401 - fixtures
from tests.sync.conftest import bus, integration, no_overlap, sql  # noqa: F401 - fixtures


def wait_for(condition: Callable[[], object], timeout: float = 60.0, what: str = "") -> None:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what or condition}"
        time.sleep(0.05)
