"""``/api/v1/alerts/channels``: each alert channel, whether it is configured, its last delivery."""

from __future__ import annotations

from fastapi import APIRouter

from api.core.deps import RuntimeDep
from api.schemas.alerts import AlertChannelPublic, AlertChannelsPublic
from tradeos_pipelines.alerts.deliverer import channel_statuses

router = APIRouter(prefix="/alerts", tags=["alerts"])


@router.get("/channels", response_model=AlertChannelsPublic)
async def alert_channels(runtime: RuntimeDep) -> AlertChannelsPublic:
    """Webhook, Telegram, e-mail: configured or not, and how the last delivery went."""
    rows = await channel_statuses(runtime.redis, runtime.settings)
    data = [AlertChannelPublic.model_validate(r) for r in rows]
    return AlertChannelsPublic(data=data, count=len(data))
