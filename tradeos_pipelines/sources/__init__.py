"""The 1C protocols: how TradeOS reads from and writes to a 1C infobase.

Each protocol is a package beside the others and produces the same typed rows
(:mod:`.common.rows`) for the engine:

- :mod:`.http_service`: the ``/hs/api`` HTTP service of docs/1c-http-service.md;
- :mod:`.odata`: the platform's standard OData interface of docs/1c-odata.md (a stock 1C).

:mod:`.common` holds what every protocol shares: the error tree (``errors.py``), the circuit
breaker in Redis (``breaker.py``), the response cache (``cache.py``), the typed rows
(``rows.py``), value parsers (``values.py``) and the interfaces a client is given for its
request log and status events (``ports.py``). Nothing here imports the database or Dagster;
the import-linter contracts in ``pyproject.toml`` check it.
"""
