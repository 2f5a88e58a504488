"""The 1C platform's standard OData interface (``<publication>/odata/standard.odata``).

A stock 1C:УТ 11.5 answers it once an administrator publishes the objects; no 1C code is
needed (docs/1c-odata.md). :class:`~.client.ODataClient` reads and writes it with the same
surface and typed rows as the HTTP service's client; :mod:`.metadata` knows which objects and
fields TradeOS needs and checks ``$metadata`` for them; :mod:`.parsing` turns OData rows into
the typed rows.
"""

from tradeos_pipelines.sources.odata.client import ODataClient, OrderNotPosted

__all__ = ["ODataClient", "OrderNotPosted"]
