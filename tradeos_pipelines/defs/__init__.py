"""Dagster code location of the 1C sync: assets, checks, partitions, schedules, sensors."""
