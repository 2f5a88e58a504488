"""``GET /api/v1/config``: where the dashboard finds the WebSocket relay and the Dagster UI.

The page never takes these from its own URL (a crafted ``?ws=`` link used to send the
token to another host); the Content-Security-Policy allows exactly this relay.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from api.core.browser import dagster_ui_url, relay_url

router = APIRouter(tags=["config"])


class ClientConfig(BaseModel):
    """Addresses as the browser reaches them."""

    ws_url: str | None = Field(
        description="The WebSocket relay (TRADEOS_PUBLIC_WS_URL, else this host on "
        "TRADEOS_WS_PORT); null when the request's Host is unusable"
    )
    dagster_url: str = Field(description="The Dagster UI (TRADEOS_PUBLIC_DAGSTER_URL)")


@router.get("/config", response_model=ClientConfig)
def client_config(request: Request) -> ClientConfig:
    """The dashboard's configuration."""
    settings = request.app.state.settings
    return ClientConfig(
        ws_url=relay_url(settings, request.scope), dagster_url=dagster_ui_url(settings)
    )
