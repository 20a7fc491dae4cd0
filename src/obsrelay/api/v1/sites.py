"""The native endpoints about sites themselves: which there are, and their stream's head."""

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from obsrelay.api.deps import event_log
from obsrelay.api.permissions import SiteForReading, access_of, credentials
from obsrelay.api.v1.models import ERRORS
from obsrelay.services.stream import EventLog

router = APIRouter(prefix="/api/v1/sites", tags=["sites"], responses=ERRORS)


class SiteOut(BaseModel):
    site: str
    head: int = Field(description="The number of the site's newest datastream event.")


class SitesOut(BaseModel):
    sites: list[SiteOut]


@router.get("", summary="Every registered site")
async def list_sites(request: Request, events: EventLog = Depends(event_log)) -> SitesOut:
    access = access_of(request)
    await access.ensure_may_list_sites(credentials(request))
    heads = dict(await events.sites())
    names = await access.sites.names()
    return SitesOut(sites=[SiteOut(site=name, head=heads.get(name, 0)) for name in names])


@router.get(
    "/{site}/stream",
    summary="The site's datastream position: connect with ?since=head to miss nothing after now",
)
async def stream_head(site: SiteForReading, events: EventLog = Depends(event_log)) -> SiteOut:
    return SiteOut(site=site, head=await events.head(site))
