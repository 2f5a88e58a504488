-- Runs once, when the postgres volume is first initialised: Dagster's storage lives in its
-- own database beside the application's (TRADEOS_DAGSTER_DATABASE_URL points at it).
CREATE DATABASE tradeos_dagster;
