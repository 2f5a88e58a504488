"""``test-connection``: one call to 1C's health endpoint through the project's 1C client; for
OData, also what the publication lacks and the price types (``sources/odata/checks.py``)."""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from api.schemas.integration import ConnectionFinding, ConnectionTest, PriceType
from tradeos_pipelines.core.integration import IntegrationConfig
from tradeos_pipelines.core.scrub import scrubber_for
from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.engine.source import connect
from tradeos_pipelines.sources.common.cache import invalidate
from tradeos_pipelines.sources.common.errors import OneCError, OneCSettingsError
from tradeos_pipelines.sources.common.transport import RetryPolicy
from tradeos_pipelines.sources.odata.checks import inspect
from tradeos_pipelines.sources.odata.client import ODataClient


async def test_connection(config: IntegrationConfig, redis: aioredis.Redis) -> ConnectionTest:
    """Call ``/hs/api/health`` of the integration's 1C: latency and version, or the reason."""

    # The client caches /health; a connection test must really reach 1C (new credentials).
    await invalidate(redis, config.id, "health", namespace=get_settings().redis_namespace)
    try:
        # Someone waits on the answer: a few quick attempts, not a sync's retry budget.
        client = connect(config, redis=redis, retry=RetryPolicy.interactive())
    except OneCSettingsError as exc:  # nothing was sent, so there is no latency to report
        return ConnectionTest(ok=False, latency_ms=0.0, error=str(exc), protocol=config.protocol)  # type: ignore[arg-type]
    started = time.perf_counter()
    try:
        async with client:
            health = await client.health()
            latency = round((time.perf_counter() - started) * 1000, 1)
            if isinstance(client, ODataClient):
                return await _odata(client, config, latency)
    except OneCError as exc:
        return ConnectionTest(
            ok=False,
            latency_ms=round((time.perf_counter() - started) * 1000, 1),
            error=scrubber_for(config)(str(exc)),
            protocol=config.protocol,  # type: ignore[arg-type]
        )
    # 1C's own text: it may echo what it was sent, like any other 1C answer.
    version = scrubber_for(config)(health.version) if health.version else health.version
    return ConnectionTest(ok=True, latency_ms=latency, version=version)


async def _odata(client: ODataClient, config: IntegrationConfig, latency: float) -> ConnectionTest:
    """The OData publication checked for everything TradeOS needs (1C answered already)."""
    found = await inspect(client)
    scrub = scrubber_for(config)
    findings = [
        ConnectionFinding(
            object=f.object,
            problem=f.problem,  # type: ignore[arg-type]
            message=scrub(f.message),
            fix=f.fix,
        )
        for f in found.findings
    ]
    return ConnectionTest(
        ok=not findings,
        latency_ms=latency,
        version=scrub(found.version) if found.version else found.version,
        error=(
            f"{len(findings)} problem(s) in the 1C publication; see findings" if findings else None
        ),
        protocol="odata",
        findings=findings,
        price_types=[PriceType(key=key, name=name) for key, name in found.price_types],
    )
