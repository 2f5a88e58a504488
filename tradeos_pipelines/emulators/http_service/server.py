"""Running the emulator: in a background thread (tests) or a child process (benchmarks, demo).

Both bind port 0 by default and expose ``base_url`` (the publication URL, ``…/trade``) and
``control``, a small synchronous client of the ``/_control/`` endpoints.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tradeos_pipelines.emulators.http_service.app import EmulatorApp
from tradeos_pipelines.emulators.http_service.infobase import EmulatorOptions, Infobase
from tradeos_pipelines.emulators.serving import ChildProcess, Running, ThreadServer

PUBLICATION = "/trade"


class EmulatorControl:
    """Drives an emulator through its ``/_control/`` endpoints with its ``X-Control-Key``."""

    def __init__(self, root_url: str, control_key: str | None, timeout: float = 30.0) -> None:
        headers = {"X-Control-Key": control_key} if control_key is not None else {}
        self._http = httpx.Client(
            base_url=root_url.rstrip("/") + "/_control", headers=headers, timeout=timeout
        )

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"emulator control {method} {path}: {response.text}")
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Counters (requests per path, responses per status, rows served per entity, …),
        row counts, warehouses, quirks switch and armed faults."""
        return self._call("GET", "/stats")

    def counters(self) -> dict[str, Any]:
        return self.stats()["counters"]

    def reset(self) -> dict[str, Any]:
        """Regenerate the catalogue from the seed; clears faults, counters and changes."""
        return self._call("POST", "/reset")

    def change_items(self, count: int = 1, ids: list[str] | None = None) -> list[str]:
        """Edit ``count`` least recently changed goods (or ``ids``); returns their ids."""
        return self._call("POST", "/items/change", json={"count": count, "ids": ids})["ids"]

    def mark_deleted(self, count: int = 1, ids: list[str] | None = None) -> list[str]:
        """Set the deletion mark on goods; returns their ids."""
        return self._call("POST", "/items/delete-mark", json={"count": count, "ids": ids})["ids"]

    def change_stock(self, count: int = 1) -> list[dict[str, Any]]:
        """Change ``count`` stock rows; returns the new rows."""
        return self._call("POST", "/stock/change", json={"count": count})["rows"]

    def set_order_status(
        self, order_id: str | None = None, status: str | None = None, count: int = 1
    ) -> list[dict[str, Any]]:
        """Move an order (or the ``count`` oldest) to ``status`` (or the next status)."""
        body = {"id": order_id, "status": status, "count": count}
        return self._call("POST", "/orders/status", json=body)["orders"]

    def orders(self, external_id: str | None = None) -> list[dict[str, Any]]:
        """Orders in the infobase (with the request body for orders created over HTTP)."""
        params = {"external_id": external_id} if external_id else None
        return self._call("GET", "/orders", params=params)["orders"]

    def inject_bad_rows(self, kind: str, count: int = 1) -> list[dict[str, Any]]:
        """Append broken rows: no_id, no_name, bad_price, bad_uuid (nomenclature),
        unknown_product, bad_quantity (stock)."""
        return self._call("POST", "/bad-rows", json={"kind": kind, "count": count})["rows"]

    def fix_bad_rows(self, ids: list[str]) -> list[str]:
        """Fix the injected bad catalogue rows with these 1C ids (as a person does in 1C)."""
        return self._call("POST", "/bad-rows/fix", json={"ids": ids})["ids"]

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        *,
        path: str | None = None,
        method: str | None = None,
        seconds: float = 0.0,
        retry_after: int | None = None,
    ) -> list[dict[str, Any]]:
        """Serve ``kind`` (500, 502, 503, 429, slow, drop, drop_after, truncated, envelope,
        html) to the next ``count`` requests whose path contains ``path``."""
        body = {
            "kind": kind,
            "count": count,
            "path": path,
            "method": method,
            "seconds": seconds,
            "retry_after": retry_after,
        }
        return self._call("POST", "/faults", json=body)["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def set_quirks(self, enabled: bool) -> None:
        """Switch 1C's quirks (BOM, formatted numbers, zero GUIDs, empty dates) on or off."""
        self._call("POST", "/quirks", json={"enabled": enabled})


class _Running(Running):
    """What both ways of running share: the publication URL and the control client."""

    control: EmulatorControl

    @property
    def base_url(self) -> str:
        """The publication URL an integration's ``base_url`` points at."""
        return self.root_url + PUBLICATION


class EmulatorServer(_Running):
    """The emulator on a background thread of this process (port 0 unless given).

    ``EmulatorServer(items=200, api_key="test-key")`` or ``basic=("Администратор", "пароль")``;
    other keywords are :class:`EmulatorOptions` fields.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        # The controls answer only to the key this wrapper hands its own control client.
        options.setdefault("control_key", secrets.token_urlsafe(16))
        self.options = EmulatorOptions(**options)
        self.infobase = Infobase(self.options)
        self.host = host
        self._server = ThreadServer(
            EmulatorApp(self.infobase), host=host, port=port, name="1C emulator"
        )
        self.port = self._server.port
        self.control = EmulatorControl(self.root_url, self.options.control_key)

    def stop(self) -> None:
        """Stop serving and wait for the thread (slow answers are cut after a second)."""
        self.control.close()
        self._server.stop()


class EmulatorProcess(_Running):
    """The emulator as a child process (``python -m tradeos_pipelines.emulators.http_service``).

    Benchmarks use it so the emulator's work does not share a Python interpreter with the
    client being measured.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, **options: Any) -> None:
        options.setdefault("control_key", secrets.token_urlsafe(16))
        args = ["--host", host, "--port", str(port)]
        for name, value in options.items():
            if value is None or value is False:
                continue
            flag = "--" + name.replace("_", "-")
            if value is True:
                args.append(flag)
            elif name == "basic":
                args.append(f"{flag}={value[0]}:{value[1]}")
            else:
                # --flag=value: a generated key or a password may begin with "-", which
                # argparse would take for the next option.
                args.append(f"{flag}={value}")
        self._process = ChildProcess(
            "tradeos_pipelines.emulators.http_service", args, what="1C emulator"
        )
        self.host, self.port = self._process.host, self._process.port
        self.control = EmulatorControl(self.root_url, options["control_key"])

    @property
    def pid(self) -> int:
        return self._process.pid

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        self.control.close()
        self._process.stop()
