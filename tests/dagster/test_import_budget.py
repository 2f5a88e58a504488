"""A run process imports the code location first: it must not load what a sync never uses.

Every Dagster run starts a Python process that imports ``tradeos_pipelines.definitions``
before any work, so each module on that path is paid on every "sync now". The sidecar
(``api``, FastAPI, Starlette, uvicorn), migrations (Alembic) and pandas stay off it.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tradeos_pipelines.core.settings import PROJECT_ROOT

FORBIDDEN = ("alembic", "api", "fastapi", "pandas", "starlette", "uvicorn")

LIST_MODULES = (
    "import json, sys; import tradeos_pipelines.definitions; print(json.dumps(sorted(sys.modules)))"
)


def test_the_code_location_imports_no_web_api_migration_or_pandas_module() -> None:
    # A fresh interpreter (as the run worker is), with the import-time profile Dagster's run
    # worker would show; its stderr report is not needed, only the modules loaded.
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-W", "ignore", "-c", LIST_MODULES],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = json.loads(done.stdout.splitlines()[-1])
    top_level = {name.split(".")[0] for name in modules}

    assert sorted(top_level & set(FORBIDDEN)) == []
    assert "tradeos_pipelines.storage.migrate" not in modules
    # The profile saw the location itself (the run worker's first import).
    assert "tradeos_pipelines.definitions" in done.stderr
