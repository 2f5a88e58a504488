"""An emulator of 1C:Управление торговлей 11.5's standard OData interface (OData v3).

What a stock 1C answers at ``<publication>/odata/standard.odata/`` (``shared/contracts/
onec-odata.md``): catalogs, customer orders with posting, barcodes, prices with
``SliceLast()``, free stock with ``Balance()``, ``$metadata``; 1C's error objects, Basic auth
with UTF-8 user names, and a web server's HTML pages when a fault is armed.

Run it with ``python -m tradeos_pipelines.emulators.odata --items 100000 --port 8081
--basic 'Администратор:пароль'``; in tests use :class:`ODataEmulatorServer` (a background
thread), in benchmarks :class:`ODataEmulatorProcess` (a child process). Both expose
``control`` (:class:`ODataEmulatorControl`) to change data, arm faults and read counters.
Self-contained: it imports nothing of the project outside this package.
"""

from tradeos_pipelines.emulators.odata.app import ODataEmulatorApp
from tradeos_pipelines.emulators.odata.infobase import Fault, Infobase, ODataEmulatorOptions
from tradeos_pipelines.emulators.odata.server import (
    ODataEmulatorControl,
    ODataEmulatorProcess,
    ODataEmulatorServer,
)

__all__ = [
    "Fault",
    "Infobase",
    "ODataEmulatorApp",
    "ODataEmulatorControl",
    "ODataEmulatorOptions",
    "ODataEmulatorProcess",
    "ODataEmulatorServer",
]
