"""Run dagster-webserver with its ASGI app wrapped in :class:`DagsterGuard`.

dagster-webserver builds its app in ``create_app_from_workspace_process_context`` and hands it
to uvicorn itself; wrapping that one function keeps every option, the workspace loading and
the shutdown handling of Dagster's own command (tests/dagster/test_dagster_ui.py fails if a
Dagster upgrade renames it).
"""

from __future__ import annotations

from typing import Any

from dagster_webserver import cli as webserver_cli

from tradeos_pipelines.core.settings import get_settings
from tradeos_pipelines.dagster_ui.guard import DagsterGuard, GuardPolicy, constant_time_equal
from tradeos_pipelines.storage.database import session_scope
from tradeos_pipelines.storage.tokens import verify_stored_token


def is_admin_token(token: str) -> bool:
    """True for the configured admin token or a live stored token with the ``admin`` scope."""
    admin = get_settings().admin_token
    if admin and constant_time_equal(token, admin):
        return True
    with session_scope() as session:
        info = verify_stored_token(session, token)
    return info is not None and "admin" in info.scopes


def policy_from_settings() -> GuardPolicy:
    settings = get_settings()
    return GuardPolicy.build(
        settings.dagster_allowed_hosts,
        require_token=settings.dagster_require_token,
        check_token=is_admin_token,
        secure_cookie=(settings.public_dagster_url or "").startswith("https://"),
    )


def main() -> None:
    make_app = webserver_cli.create_app_from_workspace_process_context
    policy = policy_from_settings()

    def guarded_app(*args: Any, **kwargs: Any) -> DagsterGuard:
        return DagsterGuard(make_app(*args, **kwargs), policy)

    webserver_cli.create_app_from_workspace_process_context = guarded_app  # type: ignore[assignment]
    webserver_cli.main()


if __name__ == "__main__":
    main()
