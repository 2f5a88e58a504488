"""Reading 100,000 catalogue items through OneCClient vs bare httpx + orjson, same run.

The emulator runs in a separate process; rounds alternate (bare, client, bare, client, …) so
both see the same machine load, and the median of each is compared. Goal: client ≤ 1.2× bare.
Each reader opens its HTTP client first, and the clock runs from the first request to the last
row, so neither side's set-up (httpx loads its CA bundle, ~20 ms) counts as reading.

    .venv/bin/python bench/bench_onec_client.py [--items 100000] [--rounds 5] [--quirks]

Prints a table and writes bench/results/onec_client.json (onec_client_quirks.json with
``--quirks``). Wall time is the goal; the reading process's CPU time is shown as well, as it
is steadier on a busy machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from pathlib import Path

import httpx
import orjson

from tradeos_pipelines.emulators.http_service import EmulatorProcess
from tradeos_pipelines.sources.http_service.client import OneCClient

API_KEY = "bench-key"
PAGE_SIZE = 1000
RESULTS = Path(__file__).parent / "results" / "onec_client.json"


class Stopwatch:
    """Wall and CPU seconds of this process from :meth:`start` to :meth:`stop`."""

    def start(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


async def bare_read(base_url: str, watch: Stopwatch) -> int:
    """The floor: the same pages with httpx and orjson, rows left as dicts."""
    rows = 0
    async with httpx.AsyncClient(
        base_url=base_url + "/", headers={"X-API-Key": API_KEY}, timeout=60
    ) as http:
        params: dict[str, object] = {"limit": PAGE_SIZE}
        watch.start()
        while True:
            response = await http.get("hs/api/nomenclature", params=params)
            response.raise_for_status()
            body = response.content
            page = orjson.loads(body[3:] if body.startswith(b"\xef\xbb\xbf") else body)
            rows += len(page["items"])
            if not page["next_cursor"]:
                return rows
            params = {"limit": PAGE_SIZE, "cursor": page["next_cursor"]}


async def client_read(base_url: str, watch: Stopwatch) -> int:
    """Typed pages through OneCClient (retries, parsing, rejects; no Redis, no request log)."""
    rows = 0
    async with OneCClient(base_url, api_key=API_KEY, timeout=60) as client:
        watch.start()
        async for page in client.iter_nomenclature(page_size=PAGE_SIZE):
            rows += len(page.items) + len(page.rejected)
    return rows


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None off Linux."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(reader: object, base_url: str) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, rows) of one full read."""
    watch = Stopwatch()

    async def read() -> tuple[int, tuple[float, float]]:
        rows = await reader(base_url, watch)  # type: ignore[operator]
        return rows, watch.stop()  # closing the connection counts, for both readers

    rows, (wall, cpu) = asyncio.run(read())
    return wall, cpu, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quirks", action="store_true", help="1C's quirky answers")
    args = parser.parse_args()

    print(f"starting the emulator with {args.items} items (separate process)…", flush=True)
    started = time.perf_counter()
    with EmulatorProcess(
        items=args.items, warehouses=5, api_key=API_KEY, quirks=args.quirks
    ) as emulator:
        startup = time.perf_counter() - started
        timed(bare_read, emulator.base_url)  # warm-up: quirky rows are made on first use
        bare: list[float] = []
        client: list[float] = []
        bare_cpu: list[float] = []
        client_cpu: list[float] = []
        emulator_cpu: list[float] = []  # what serving one client pass cost the emulator
        rows = 0
        for _ in range(args.rounds):
            seconds, cpu, rows = timed(bare_read, emulator.base_url)
            bare.append(seconds)
            bare_cpu.append(cpu)
            served_before = process_cpu(emulator.pid)
            seconds, cpu, client_rows = timed(client_read, emulator.base_url)
            served_after = process_cpu(emulator.pid)
            client.append(seconds)
            client_cpu.append(cpu)
            if served_before is not None and served_after is not None:
                emulator_cpu.append(served_after - served_before)
            if client_rows != rows:
                raise SystemExit(f"client read {client_rows} rows, bare read {rows}")

    bare_median, client_median = statistics.median(bare), statistics.median(client)
    ratio = client_median / bare_median
    print()
    print(
        f"rows per pass: {rows}   pages of {PAGE_SIZE}   rounds: {args.rounds}   "
        f"quirks: {args.quirks}   emulator start: {startup:.1f} s"
    )
    print(f"{'reader':<28}{'median s':>10}{'min s':>10}{'CPU s':>10}{'rows/s':>12}")
    for name, runs, cpus in (
        ("bare httpx + orjson", bare, bare_cpu),
        ("OneCClient (typed rows)", client, client_cpu),
    ):
        median = statistics.median(runs)
        print(
            f"{name:<28}{median:>10.3f}{min(runs):>10.3f}{statistics.median(cpus):>10.3f}"
            f"{rows / median:>12,.0f}"
        )
    verdict = "meets" if ratio <= 1.2 else "misses"
    cpu_ratio = statistics.median(client_cpu) / statistics.median(bare_cpu)
    print(f"client / bare = {ratio:.2f}x wall ({verdict} the goal of <= 1.2x)")
    print(f"client / bare = {cpu_ratio:.2f}x CPU of the reading process")
    if emulator_cpu:
        print(
            f"emulator CPU per client pass: {statistics.median(emulator_cpu):.3f} s "
            "(it is not the bottleneck while this stays well under the reader's)"
        )

    results = RESULTS.with_name("onec_client_quirks.json") if args.quirks else RESULTS
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(
        json.dumps(
            {
                "benchmark": "onec_client",
                "rows": rows,
                "page_size": PAGE_SIZE,
                "rounds": args.rounds,
                "quirks": args.quirks,
                "bare_seconds": bare,
                "client_seconds": client,
                "bare_cpu_seconds": bare_cpu,
                "client_cpu_seconds": client_cpu,
                "cpu_ratio": cpu_ratio,
                "emulator_cpu_seconds_per_client_pass": emulator_cpu,
                "bare_median": bare_median,
                "client_median": client_median,
                "ratio": ratio,
                "goal_ratio": 1.2,
                "emulator_startup_seconds": startup,
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            indent=2,
        )
    )
    print(f"results: {results}")


if __name__ == "__main__":
    main()
