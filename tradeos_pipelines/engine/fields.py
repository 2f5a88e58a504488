"""The product fields TradeOS mirrors from 1C, and SQL fragments built from them.

These are the fields of the three-way conflict check, the history snapshots and restores. The
trigger of migration 0002 watches the same list; keep them in step.
"""

from __future__ import annotations

PRODUCT_FIELDS: tuple[str, ...] = (
    "code",
    "article",
    "name",
    "full_name",
    "unit",
    "group_onec_id",
    "price",
    "vat",
    "barcodes",
)


def fields_json(alias: str) -> str:
    """``jsonb_build_object`` of the business fields of row ``alias`` (same shape everywhere)."""
    pairs = ", ".join(f"'{f}', {alias}.{f}" for f in PRODUCT_FIELDS)
    return f"jsonb_build_object({pairs})"


def _from_json(field: str, source: str) -> str:
    if field == "group_onec_id":
        return f"({source} ->> '{field}')::uuid"
    if field == "price":
        return f"({source} ->> '{field}')::numeric"
    if field == "barcodes":
        return f"coalesce(ARRAY(SELECT jsonb_array_elements_text({source} -> '{field}')), '{{}}')"
    return f"{source} ->> '{field}'"


def assignments_from_json(source: str, fields: tuple[str, ...] = PRODUCT_FIELDS) -> str:
    """``SET`` list putting ``fields`` back from a JSON snapshot (``source`` is a jsonb SQL)."""
    return ", ".join(f"{f} = {_from_json(f, source)}" for f in fields)
