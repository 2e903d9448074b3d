"""/api/audit: the event log for admins, filtered, paged, or as a CSV download."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator

from camvault.api.errors import responses
from camvault.api.schemas import AuditPage
from camvault.api.security import AdminUser, get_camvault
from camvault.errors import BadRequest
from camvault.services import audit
from camvault.store.queries import aware

router = APIRouter(prefix="/api/audit", tags=["admin"])

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_time(value: object) -> object:
    # Pydantic would also read "1700000000" or "0.5" as Unix times, and filter by 1970
    # without a word; the document promises ISO 8601 date-times.
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("expected an ISO 8601 date-time such as 2026-11-27T08:00:00Z")
    return value


IsoTime = Annotated[datetime | None, BeforeValidator(_iso_time)]


@router.get(
    "",
    response_model=AuditPage,
    responses={
        **responses(400, 401, 403),
        200: {
            "description": "A page of events (JSON), or the whole filtered log (CSV)",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
    },
    summary="Admin: the audit log, newest first, filtered; format=csv downloads it all",
)
async def audit_log(
    request: Request,
    _admin: AdminUser,
    user: Annotated[str | None, Query(max_length=64, description="Who did it")] = None,
    file: Annotated[str | None, Query(max_length=255, description="Which file")] = None,
    kinds: Annotated[
        str | None,
        Query(
            alias="type",
            max_length=500,
            description="Event types, comma separated; 'file' means every file.* type",
        ),
    ] = None,
    since: Annotated[IsoTime, Query(description="From this time (inclusive)")] = None,
    until: Annotated[IsoTime, Query(description="Up to this time (exclusive)")] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="Paging: next_before")
    ] = None,
    as_format: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
) -> Any:
    where = audit.AuditFilter(
        user=user or None,
        file=file or None,
        types=tuple(t.strip() for t in (kinds or "").split(",") if t.strip()),
        # A time without a zone is UTC, like every time camvault stores.
        since=aware(since) if since else None,
        until=aware(until) if until else None,
    )
    if where.since and where.until and where.since >= where.until:
        raise BadRequest("'since' must be before 'until'")
    db = get_camvault(request).db
    if as_format == "csv":
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        return StreamingResponse(
            audit.csv_lines(db, where),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="camvault-audit-{stamp}.csv"'},
        )
    entries, next_before = await to_thread.run_sync(
        lambda: audit.page(db, where, limit=limit, before=before)
    )
    return {"events": entries, "next_before": next_before}
