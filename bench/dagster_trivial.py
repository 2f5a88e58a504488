"""A do-nothing asset: the benchmark's baseline for Dagster's own launch and run overhead."""

from dagster import Definitions, asset, define_asset_job, in_process_executor


@asset
def noop() -> None:
    """Does nothing; its run time is pure Dagster overhead."""


defs = Definitions(
    assets=[noop],
    jobs=[define_asset_job("noop_job", selection=[noop], executor_def=in_process_executor)],
)
