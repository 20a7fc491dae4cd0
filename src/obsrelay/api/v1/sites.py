"""The native endpoints about sites themselves: which there are, whether each one's
software is alive, what waits for it and what it holds, and its stream's head."""

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from obsrelay.api.deps import event_log, services_of
from obsrelay.api.permissions import SiteForReading, access_of, credentials
from obsrelay.api.v1.models import ERRORS
from obsrelay.services.presence import SiteView
from obsrelay.services.stream import EventLog

router = APIRouter(prefix="/api/v1/sites", tags=["sites"], responses=ERRORS)


class LastSeenOut(BaseModel):
    """When each kind of call last came from the site (ms since the epoch), or null."""

    poll_primary: int | None = Field(description="A poll or claim on the primary queue.")
    poll_alternate: int | None = Field(description="A poll or claim on the alternate queue.")
    status: int | None = Field(description="A job status report.")
    message: int | None = Field(description="A user status message.")
    event: int | None = Field(description="A live event.")


class SiteJobsOut(BaseModel):
    """The site's jobs on the primary queue: waiting for it, and held by it."""

    unread: int = Field(description="Jobs not yet taken by the site.")
    oldest_unread_ms: int | None = Field(description="When the oldest of them was submitted.")
    received: int = Field(description="Jobs the site took and has not reported on yet.")
    running: int = Field(description="Jobs the site reported on and has not finished.")
    overdue: list[str] = Field(
        description="Running jobs whose estimate, and OBSRELAY_JOB_OVERDUE_GRACE, passed "
        "without a report (ULIDs). They are never delivered again by themselves."
    )
    abandoned: list[str] = Field(
        description="Received jobs with no report for OBSRELAY_JOB_ABANDONED_AFTER (ULIDs)."
    )


class LastMessageOut(BaseModel):
    level: str
    timestamp: float = Field(description="The message's own time, in seconds since the epoch.")


class SiteOut(BaseModel):
    site: str
    online: bool = Field(
        description="Whether the site's software made a call within OBSRELAY_SITE_OFFLINE_AFTER."
    )
    since_ms: int = Field(
        description="Since when the site is online (its first call after a silence) or "
        "offline (its last call plus the threshold; its registration if never seen)."
    )
    last_seen_ms: int | None = Field(description="The site's last call of any kind.")
    last_seen: LastSeenOut
    jobs: SiteJobsOut
    last_message: LastMessageOut | None
    head: int = Field(description="The number of the site's newest stream event.")

    @classmethod
    def of(cls, view: SiteView, head: int) -> "SiteOut":
        return cls(
            site=view.site,
            online=view.online,
            since_ms=view.since_ms,
            last_seen_ms=view.last_seen_ms,
            last_seen=LastSeenOut(**{call.value: at for call, at in view.calls.items()}),
            jobs=SiteJobsOut(
                unread=view.jobs.unread,
                oldest_unread_ms=view.jobs.oldest_unread_ms,
                received=view.jobs.received,
                running=view.jobs.running,
                overdue=view.jobs.overdue,
                abandoned=view.jobs.abandoned,
            ),
            last_message=(
                LastMessageOut(level=view.last_message[0], timestamp=view.last_message[1])
                if view.last_message
                else None
            ),
            head=head,
        )


class SitesOut(BaseModel):
    sites: list[SiteOut]
    offline_after_seconds: float = Field(description="OBSRELAY_SITE_OFFLINE_AFTER.")


class StreamHeadOut(BaseModel):
    site: str
    head: int = Field(description="The number of the site's newest stream event.")


@router.get(
    "",
    summary="Every registered site: alive or not, its jobs, its last message; "
    "offline sites first, then by name",
)
async def list_sites(request: Request, events: EventLog = Depends(event_log)) -> SitesOut:
    await access_of(request).ensure_may_list_sites(credentials(request))
    presence = services_of(request).presence
    heads = dict(await events.sites())
    # The order an operator reads them in: what needs looking at first.
    views = sorted(await presence.overview(), key=lambda view: (view.online, view.site))
    return SitesOut(
        sites=[SiteOut.of(view, heads.get(view.site, 0)) for view in views],
        offline_after_seconds=presence.offline_after_ms / 1000,
    )


@router.get("/{site}", summary="One site: alive or not, its jobs, its last message")
async def get_site(
    request: Request, site: SiteForReading, events: EventLog = Depends(event_log)
) -> SiteOut:
    await access_of(request).sites.ensure_exists(site)
    views = await services_of(request).presence.overview([site])
    return SiteOut.of(views[0], await events.head(site))


@router.get(
    "/{site}/stream",
    summary="The site's stream position: connect with ?since=head to miss nothing after now",
)
async def stream_head(site: SiteForReading, events: EventLog = Depends(event_log)) -> StreamHeadOut:
    return StreamHeadOut(site=site, head=await events.head(site))
