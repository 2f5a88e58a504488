"""What TradeOS holds of one integration's 1C catalogue, for the change sensor's OData probe.

The standard OData interface has no modification time on catalog items: the probe compares
``$count`` and a window of ``Ref_Key,DataVersion`` with what is here (it fills the
``StoredCatalogue`` port of ``sources.common.ports``). Rows 1C sent that were rejected and are
still open count as known, with the version they came with: a bad row that 1C did not change
since is not a change, and must not make the sensor ask for a run on every tick.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import text

from tradeos_pipelines.storage.database import get_engine

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_OPEN_REJECTS = """
SELECT r.onec_id, coalesce(r.payload->>'version', r.payload->>'DataVersion') AS version
FROM sync_rejects r JOIN sync_logs l ON l.id = r.sync_log_id
WHERE l.integration_id = :integration AND l.entity = 'nomenclature' AND r.resolved_at IS NULL
"""

# Products and folders are apart (a folder is never a product); an open reject of a key that
# is stored counts once.
_COUNT_SQL = text(f"""
SELECT (SELECT count(*) FROM products WHERE integration_id = :integration)
    + (SELECT count(*) FROM product_groups WHERE integration_id = :integration)
    + (SELECT count(DISTINCT rejected.onec_id) FROM ({_OPEN_REJECTS}) rejected
       WHERE NOT EXISTS (
           SELECT FROM products p WHERE p.integration_id = :integration
               AND p.onec_id::text = rejected.onec_id)
       AND NOT EXISTS (
           SELECT FROM product_groups g WHERE g.integration_id = :integration
               AND g.onec_id::text = rejected.onec_id))
""")

# One probe of each table's (integration_id, onec_id) index per asked key, whatever the
# statistics say (LIMIT keeps the planner from flattening the lateral subqueries into a join):
# right after a first sync of a million goods, before autovacuum analyzed them, the plain
# `onec_id = ANY(...)` scanned every row of the integration (0.73 s a page of 1,000 keys; 8 ms
# this way). The keys travel as one string: a list of 1,000 strings cost psycopg2 and the
# server more than the probes. A key that is no GUID is only looked for among the rejects.
_VERSIONS_SQL = text(f"""
SELECT asked.key, known.onec_version
FROM unnest(string_to_array(:ids, chr(31))) AS asked(key)
CROSS JOIN LATERAL (
    (SELECT onec_version FROM products p
     WHERE p.integration_id = :integration AND p.onec_id = asked.key::uuid LIMIT 1)
    UNION ALL
    (SELECT onec_version FROM product_groups g
     WHERE g.integration_id = :integration AND g.onec_id = asked.key::uuid LIMIT 1)
) known
UNION ALL
SELECT * FROM ({_OPEN_REJECTS}) rejected
WHERE onec_id = ANY(string_to_array(:keys, chr(31)))
""")


class StoredCatalogueReader:
    """The goods and folders of ``integration_id`` as stored (two small queries a probe)."""

    def __init__(self, database_url: str, integration_id: str) -> None:
        self.engine = get_engine(database_url)
        self.integration_id = integration_id

    def count(self) -> int:
        """Goods and folders TradeOS knows (stored, or rejected and still open)."""
        with self.engine.connect() as conn:
            return int(conn.execute(_COUNT_SQL, {"integration": self.integration_id}).scalar_one())

    def versions(self, keys: Sequence[str]) -> dict[str, list[str]]:
        """Every version TradeOS knows of each of ``keys``."""
        found: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            params = {
                "integration": self.integration_id,
                "ids": _SEPARATOR.join(key for key in keys if _GUID.fullmatch(key)),
                "keys": _SEPARATOR.join(keys),
            }
            for key, version in conn.execute(_VERSIONS_SQL, params):
                if version is not None:
                    found.setdefault(key, []).append(version)
        return found


# Between keys in the one string they travel as (a control character no 1C key holds).
_SEPARATOR = chr(31)
