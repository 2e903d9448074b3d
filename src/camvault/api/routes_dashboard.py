"""/api/dashboard: activity aggregates for every signed-in user, and their chart as SVG."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from camvault.api.errors import responses
from camvault.api.schemas import DashboardOut
from camvault.api.security import CurrentUser, get_camvault
from camvault.services import dashboard

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"])

TimeZone = Annotated[
    str | None,
    Query(max_length=64, description="IANA time zone the days are counted in (default UTC)"),
]
# The SVG can be opened on its own: it must never run a script or load anything.
SVG_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@router.get(
    "",
    response_model=DashboardOut,
    responses=responses(400, 401),
    summary="Check-ins per day per user and the most active files, last 30 days",
)
async def overview(request: Request, _user: CurrentUser, tz: TimeZone = None) -> dict[str, Any]:
    db = get_camvault(request).db
    zone = dashboard.zone(tz)
    return await to_thread.run_sync(lambda: dashboard.aggregates(db, tz=zone))


@router.get(
    "/checkins.svg",
    response_class=Response,
    responses={
        **responses(400, 401),
        200: {
            "description": "A stacked bar chart (SVG): check-ins per day, one colour per user",
            "content": {"image/svg+xml": {"schema": {"type": "string"}}},
        },
    },
    summary="The check-ins chart of the dashboard, rendered on the server",
)
async def checkins_chart(
    request: Request,
    _user: CurrentUser,
    tz: TimeZone = None,
    theme: Annotated[Literal["light", "dark"], Query(description="Colours")] = "light",
) -> Response:
    db = get_camvault(request).db
    zone = dashboard.zone(tz)

    def render() -> bytes:
        return dashboard.checkins_chart(dashboard.aggregates(db, tz=zone), theme)

    svg = await to_thread.run_sync(render)
    return Response(svg, media_type="image/svg+xml", headers=SVG_HEADERS)
