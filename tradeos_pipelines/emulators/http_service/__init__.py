"""A fast emulator of the 1C HTTP service contract (``shared/contracts/onec-http-service.md``).

Run it with ``python -m tradeos_pipelines.emulators.http_service --items 100000 --port 8080
--api-key KEY`` (or ``--basic 'Администратор:пароль'``, ``--quirks``); in tests use
:class:`EmulatorServer` (a background thread) or the pytest fixtures in
``tests/fixtures/emulator.py``; benchmarks use :class:`EmulatorProcess`.
"""

from tradeos_pipelines.emulators.http_service.app import EmulatorApp
from tradeos_pipelines.emulators.http_service.infobase import (
    BAD_ROW_KINDS,
    FAULT_KINDS,
    EmulatorOptions,
    Infobase,
)
from tradeos_pipelines.emulators.http_service.server import (
    EmulatorControl,
    EmulatorProcess,
    EmulatorServer,
)

__all__ = [
    "BAD_ROW_KINDS",
    "FAULT_KINDS",
    "EmulatorApp",
    "EmulatorControl",
    "EmulatorOptions",
    "EmulatorProcess",
    "EmulatorServer",
    "Infobase",
]
