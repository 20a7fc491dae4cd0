"""The native job endpoints under /api/v1/sites/{site}/jobs."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request, Response

from obsrelay.api import longpoll
from obsrelay.api.deps import job_service
from obsrelay.api.identity import (
    access_of,
    credentials,
    site_caller,
    site_name,
    site_reader,
    user,
)
from obsrelay.api.v1.models import (
    ERRORS,
    ClaimIn,
    JobDetailOut,
    JobOut,
    JobPageOut,
    StatusIn,
    SubmitJobIn,
)
from obsrelay.domain.jobs import Identity, NewJob, Queue
from obsrelay.services.jobs import JobService

router = APIRouter(prefix="/api/v1/sites/{site}/jobs", tags=["jobs"], responses=ERRORS)
# The same job by its ULID alone, for people and scripts that have only that.
by_ulid_router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"], responses=ERRORS)


# The site in the path, checked for the kind of access the endpoint needs.
Site = Annotated[str, Depends(site_name)]
SiteForReading = Annotated[str, Depends(site_reader)]
SiteAsCaller = Annotated[str, Depends(site_caller)]
Jobs = Annotated[JobService, Depends(job_service)]


@router.post("", status_code=201, summary="Submit a job")
async def submit_job(
    request: Request, site: Site, body: SubmitJobIn, jobs: Jobs, who: Identity = Depends(user)
) -> JobOut:
    access = access_of(request)
    access.limit("jobs", site)
    await access.may_command(who, site)
    new = NewJob(
        site=site,
        device_type=body.device,
        device_instance=body.instance,
        action=body.action,
        required_params=body.required_params,
        optional_params=body.optional_params,
        user=who,
    )
    return JobOut.of((await jobs.submit(new)).job)


@router.get("", summary="List a site's jobs, a page at a time")
async def list_jobs(
    site: SiteForReading,
    jobs: Jobs,
    status: Annotated[
        str | None, Query(max_length=64, description="Only jobs with this status.")
    ] = None,
    queue: Annotated[Literal["primary", "alternate"], Query()] = "primary",
    after: Annotated[
        str | None, Query(max_length=26, description="The `next_after` of the previous page.")
    ] = None,
    order: Annotated[Literal["oldest", "newest"], Query()] = "oldest",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobPageOut:
    page = await jobs.page(
        site,
        status=status.strip().upper() if status else None,
        queue=Queue(queue),
        after=after,
        newest_first=order == "newest",
        limit=limit,
    )
    return JobPageOut(jobs=[JobOut.of(job) for job in page.jobs], next_after=page.next_after)


@router.post("/claim", summary="Claim the site's unread jobs (marks them RECEIVED)")
async def claim_jobs(
    request: Request, response: Response, site: SiteAsCaller, body: ClaimIn | None = None
) -> list[JobOut]:
    body = body or ClaimIn()
    wait, headers = longpoll.wait_and_headers(body.wait)
    response.headers.update(headers)
    claimed = await longpoll.claim(
        request, site, Queue(body.queue), wait=wait, limit=body.limit, claim_id=body.claim_id
    )
    return [JobOut.of(job) for job in claimed]


@router.get("/{ulid}", summary="One job with its whole status history")
async def get_job(site: SiteForReading, ulid: str, jobs: Jobs) -> JobDetailOut:
    job, history = await jobs.get(site, ulid)
    return JobDetailOut.with_history(job, history)


@router.post("/{ulid}/status", summary="Report a job's status (from the site)")
async def report_status(site: SiteAsCaller, ulid: str, body: StatusIn, jobs: Jobs) -> JobOut:
    job = await jobs.report_status(
        site, ulid, Queue(body.queue), body.status, body.seconds_until_complete
    )
    return JobOut.of(job)


@router.post("/{ulid}/cancel", summary="Cancel a job the site has not received yet")
async def cancel_job(
    request: Request, site: Site, ulid: str, jobs: Jobs, who: Identity = Depends(user)
) -> JobOut:
    await access_of(request).may_command(who, site)
    return JobOut.of(await jobs.cancel(site, ulid, who))


@by_ulid_router.get("/{ulid}", summary="One job, at whatever site, with its status history")
async def find_job(request: Request, ulid: str, jobs: Jobs) -> JobDetailOut:
    job, history = await jobs.find(ulid)
    await access_of(request).may_read(job.site, credentials(request))
    return JobDetailOut.with_history(job, history)


@by_ulid_router.post("/{ulid}/cancel", summary="Cancel a job, at whatever site")
async def cancel_found_job(
    request: Request, ulid: str, jobs: Jobs, who: Identity = Depends(user)
) -> JobOut:
    job, _ = await jobs.find(ulid)
    await access_of(request).may_command(who, job.site)
    return JobOut.of(await jobs.cancel(job.site, ulid, who))
