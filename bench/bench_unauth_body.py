"""Anonymous 100 MB POSTs: how fast the 401 comes and whether ``/health`` stays fast meanwhile.

Starts ``python -m api``, then three clients at once each send a POST declaring a 100 MB JSON
body (``[0,0,…]``) without a token, writing the body as fast as the socket takes it, while a
fourth client polls ``GET /api/v1/health``. Reports time to the 401 per client, how much of
the body the server took before refusing, /health latency and the sidecar's peak RSS.
Run: ``.venv/bin/python bench/bench_unauth_body.py``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._sidecar import percentile, rss_mb, sidecar_stack, write_results

BODY_BYTES = 100_000_000
CLIENTS = 3


def attack(host: str, port: int, out: dict) -> None:
    head = (
        f"POST /api/v1/integrations HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {BODY_BYTES}\r\n\r\n"
    ).encode()
    chunk = b"0," * 32_768
    started = time.monotonic()
    sent = 0
    with socket.create_connection((host, port)) as sock:
        sock.sendall(head + b"[")
        sock.setblocking(False)
        answer = b""
        while sent < BODY_BYTES and b"\r\n" not in answer:
            with contextlib.suppress(BlockingIOError):
                answer += sock.recv(4096)
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.setblocking(True)
        sock.settimeout(30)
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    out["seconds_to_answer"] = round(time.monotonic() - started, 3)
    out["status_line"] = answer.split(b"\r\n", 1)[0].decode()
    out["body_bytes_sent_before_answer"] = sent


def main() -> None:
    with sidecar_stack() as stack:
        parts = urlsplit(stack.api_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        results: list[dict] = [{} for _ in range(CLIENTS)]
        threads = [threading.Thread(target=attack, args=(host, port, r)) for r in results]
        health_ms: list[float] = []
        peak_rss = rss_mb(stack.process.pid)
        with httpx.Client(base_url=stack.api_url, timeout=60) as client:
            client.get("/api/v1/health")
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                started = time.perf_counter()
                client.get("/api/v1/health")
                health_ms.append((time.perf_counter() - started) * 1000)
                peak_rss = max(peak_rss, rss_mb(stack.process.pid))
                time.sleep(0.01)
        for thread in threads:
            thread.join()
        report = {
            "clients": results,
            "health_requests": len(health_ms),
            "health_p50_ms": round(percentile(health_ms, 0.5), 1),
            "health_max_ms": round(max(health_ms, default=float("nan")), 1),
            "sidecar_peak_rss_mb": peak_rss,
        }
        print(report)
        write_results("unauth_body", report)


if __name__ == "__main__":
    main()
