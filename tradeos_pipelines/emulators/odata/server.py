"""Running the emulator: in a background thread (tests) or a child process (benchmarks).

Both bind port 0 by default and expose ``base_url`` (the publication, ``…/trade``),
``odata_url`` (``…/trade/odata/standard.odata``) and ``control``, a small synchronous client
of the ``/_control/`` endpoints::

    with ODataEmulatorServer(items=1000, username="Администратор", password="пароль") as emu:
        httpx.get(emu.odata_url + "/Catalog_Номенклатура?$format=json&$top=10", auth=...)
        emu.control.change_items(3)
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tradeos_pipelines.emulators.odata.app import SERVICE, ODataEmulatorApp
from tradeos_pipelines.emulators.odata.infobase import Infobase, ODataEmulatorOptions
from tradeos_pipelines.emulators.serving import ChildProcess, Running, ThreadServer


class ODataEmulatorControl:
    """Drives an emulator through ``/_control/`` (sends ``X-Control-Key`` when given one)."""

    def __init__(self, root_url: str, control_key: str | None = None, timeout: float = 60) -> None:
        headers = {"X-Control-Key": control_key} if control_key is not None else {}
        self._http = httpx.Client(
            base_url=root_url.rstrip("/") + "/_control", headers=headers, timeout=timeout
        )

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"emulator control {method} {path}: {response.text}")
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Counters, row counts, published objects, rights, faults, armed postings."""
        return self._call("GET", "/stats")

    def counters(self) -> dict[str, Any]:
        """Requests per path, responses per status, rows and bytes served per entity set."""
        return self.stats()["counters"]

    def reset(self) -> dict[str, Any]:
        """Back to the seeded data; clears faults, rights, counters, changes."""
        return self._call("POST", "/reset")

    def change_items(
        self, count: int = 1, ids: list[str] | None = None, fields: dict[str, Any] | None = None
    ) -> list[str]:
        """Rewrite ``count`` random goods (or ``ids``): new DataVersion; returns their keys."""
        return self._call("POST", "/items/change", {"count": count, "ids": ids, "fields": fields})[
            "ids"
        ]

    def mark_deleted(
        self, count: int = 1, ids: list[str] | None = None, mark: bool = True
    ) -> list[str]:
        """Set (``mark=False``: clear) the deletion mark of goods; returns their keys."""
        return self._call("POST", "/items/delete-mark", {"count": count, "ids": ids, "mark": mark})[
            "ids"
        ]

    def add_items(self, count: int = 1, stock: float = 0) -> list[str]:
        """Create goods (with a barcode and prices, and ``stock`` of each in every warehouse);
        returns their keys."""
        return self._call("POST", "/items/add", {"count": count, "stock": stock})["ids"]

    def change_prices(
        self, count: int = 1, ids: list[str] | None = None, price_type: str | None = None
    ) -> dict[str, Any]:
        """Set new prices now: ``{"recorder": key, "ids": goods}``."""
        body = {"count": count, "ids": ids, "price_type": price_type}
        return self._call("POST", "/prices/change", body)

    def change_stock(self, count: int = 1) -> list[dict[str, Any]]:
        """Receive goods on ``count`` stock rows; returns them as they are now."""
        return self._call("POST", "/stock/change", {"count": count})["rows"]

    def stock_rows(self) -> list[dict[str, Any]]:
        """Every stored balance (good, warehouse, the three resources)."""
        return self._call("GET", "/stock")["rows"]

    def inject_fault(
        self,
        status: int | None = None,
        count: int = 1,
        *,
        body: str | None = None,
        content_type: str | None = None,
        path: str | None = None,
        method: str | None = None,
        delay: float = 0.0,
        drop: bool = False,
        retry_after: int | None = None,
        query: str | None = None,
    ) -> list[dict[str, Any]]:
        """Answer the next ``count`` matching requests with ``status`` (and ``body``; by default
        the web server's HTML page, or 1C's code -1 error for 500), after ``delay`` seconds;
        ``drop`` closes the connection instead; ``retry_after`` adds that header (seconds).
        ``path``: prefix of the resource path after ``standard.odata/``, or of the URL path
        when it starts with ``/``; ``query``: text the decoded query string must contain."""
        fault = {
            "status": status,
            "count": count,
            "body": body,
            "content_type": content_type,
            "path": path,
            "method": method,
            "delay": delay,
            "drop": drop,
            "retry_after": retry_after,
            "query": query,
        }
        return self._call("POST", "/faults", fault)["faults"]

    def clear_faults(self) -> None:
        """Disarm every fault."""
        self._call("DELETE", "/faults")

    def publish(self, names: list[str]) -> None:
        """Add objects to the published set."""
        self._call("POST", "/publish", {"names": names})

    def unpublish(self, names: list[str]) -> None:
        """Take objects out of the published set (404 code 6, gone from $metadata)."""
        self._call("POST", "/unpublish", {"names": names})

    def set_published(self, names: list[str]) -> None:
        """Publish exactly ``names`` (УстановитьСоставСтандартногоИнтерфейсаOData)."""
        self._call("POST", "/published", {"names": names})

    def deny_read(self, name: str, ids: list[str] | None = None) -> None:
        """No right to read object ``name`` (code 20), or only its objects ``ids`` (RLS:
        code 20 unless ``allowedOnly=true``, which leaves them out)."""
        self._call("POST", "/rights/deny", {"object": name, "ids": ids})

    def allow_read(self, name: str) -> None:
        """Give back the right to read object ``name``."""
        self._call("POST", "/rights/allow", {"object": name})

    def set_balance_delay(self, seconds: float) -> None:
        """How long ``Balance()`` takes to answer."""
        self._call("POST", "/balance-delay", {"seconds": seconds})

    def arm_posting_failure(
        self, count: int = 1, message: str | None = None, ids: list[str] | None = None
    ) -> None:
        """The next ``count`` postings (of ``ids``) fail with 500, code -1 (``count=0``
        disarms); ``message`` replaces the default "Недостаточно товара…" text."""
        self._call("POST", "/posting-failure", {"count": count, "message": message, "ids": ids})

    def created_orders(self) -> list[dict[str, Any]]:
        """Customer orders created over OData since the last reset, as stored."""
        return self._call("GET", "/orders")["orders"]


class _Running(Running):
    """What both ways of running share: the publication URLs and the control client."""

    publication: str
    control: ODataEmulatorControl

    @property
    def base_url(self) -> str:
        """The publication URL (``http://127.0.0.1:PORT/trade``)."""
        return self.root_url + self.publication

    @property
    def odata_url(self) -> str:
        """The standard OData interface root (``…/trade/odata/standard.odata``)."""
        return self.base_url + SERVICE


class ODataEmulatorServer(_Running):
    """The emulator on a background thread of this process (port 0 unless given).

    Keywords are :class:`ODataEmulatorOptions` fields: ``items``, ``username``/``password``,
    ``published``, ``control_key``, ``balance_delay``, ``web_server``, …
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        # The controls answer only to the key this wrapper hands its own control client.
        options.setdefault("control_key", secrets.token_urlsafe(16))
        self.options = ODataEmulatorOptions(**options)
        self.infobase = Infobase(self.options)
        self.host = host
        self.publication = self.options.publication
        self._server = ThreadServer(
            ODataEmulatorApp(self.infobase),
            host=host,
            port=port,
            name="OData emulator",
            server_header=False,  # the app sends the emulated web server's own
        )
        self.port = self._server.port
        self.control = ODataEmulatorControl(self.root_url, self.options.control_key)

    def stop(self) -> None:
        """Stop serving and wait for the thread (slow answers are cut after a second)."""
        self.control.close()
        self._server.stop()


class ODataEmulatorProcess(_Running):
    """The emulator as a child process (``python -m tradeos_pipelines.emulators.odata``).

    Benchmarks use it so the emulator's work does not share an interpreter with the client
    being measured. Keywords as for :class:`ODataEmulatorServer`.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        options.setdefault("control_key", secrets.token_urlsafe(16))
        parsed = ODataEmulatorOptions(**options)  # fail here, not in the child
        self.publication = parsed.publication
        args = ["--host", host, "--port", str(port), *command_line(parsed)]
        self._process = ChildProcess(
            "tradeos_pipelines.emulators.odata", args, what="OData emulator"
        )
        self.host, self.port = self._process.host, self._process.port
        self.control = ODataEmulatorControl(self.root_url, parsed.control_key)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self._process.pid

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        self.control.close()
        self._process.stop()


def command_line(options: ODataEmulatorOptions) -> list[str]:
    """The ``__main__`` arguments that rebuild ``options``.

    Each as ``--flag=value``: a generated control key or a password may begin with ``-``,
    which argparse would take for the next option (the process then did not start).
    """
    values: list[tuple[str, object]] = [
        ("items", options.items),
        ("warehouses", options.warehouses),
        ("seed", options.seed),
        ("publication", options.publication),
        ("timezone", options.timezone),
        ("price-register", options.price_register),
        ("balance-delay", options.balance_delay),
        ("web-server", options.web_server),
    ]
    if options.username is not None:
        values.append(("basic", f"{options.username}:{options.password}"))
    if options.control_key is not None:
        values.append(("control-key", options.control_key))
    if options.published is not None:
        values.append(("publish", ",".join(options.published)))
    if options.max_query_length is not None:
        values.append(("max-query-length", options.max_query_length))
    return [f"--{flag}={value}" for flag, value in values]
