"""One job per entity a person can ask to sync; each runs one partition with its checks.

The jobs execute in process: each has one or two steps that run in order anyway, and a
subprocess per step would add seconds of Python start-up to every "sync now".
"""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job, in_process_executor

from tradeos_pipelines.core.vocabulary import JOB_FOR_ENTITY
from tradeos_pipelines.defs.assets import (
    onec_order_export,
    tradeos_order_statuses,
    tradeos_products,
    tradeos_stock,
)
from tradeos_pipelines.defs.partitions import (
    integration_partitions_def,
    orders_partitions_def,
)

nomenclature_job = define_asset_job(
    JOB_FOR_ENTITY["nomenclature"],
    selection=AssetSelection.assets(tradeos_products),
    partitions_def=integration_partitions_def,
    executor_def=in_process_executor,
    description="1C nomenclature → TradeOS products for one integration.",
)

stock_job = define_asset_job(
    JOB_FOR_ENTITY["stock"],
    selection=AssetSelection.assets(tradeos_stock),
    partitions_def=integration_partitions_def,
    executor_def=in_process_executor,
    description="1C free stock → TradeOS stock for one integration.",
)

orders_job = define_asset_job(
    JOB_FOR_ENTITY["orders"],
    selection=AssetSelection.assets(onec_order_export, tradeos_order_statuses),
    partitions_def=orders_partitions_def,
    executor_def=in_process_executor,
    description="Export one day's TradeOS orders to 1C, then read their 1C statuses back.",
)

sync_jobs = [nomenclature_job, stock_job, orders_job]
