"""The native job endpoints under /api/v1/sites/{site}/jobs and /api/v1/jobs/{ulid}."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from obsrelay.api import longpoll
from obsrelay.api.body import StrictJsonRoute, encode_strictly
from obsrelay.api.deps import job_service
from obsrelay.api.permissions import (
    Commander,
    SiteAsReporter,
    SiteForReading,
    access_of,
    acting_as_site,
    credentials,
    ensure,
    site_name,
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
from obsrelay.auth.access import Action
from obsrelay.domain.errors import Forbidden, NotFound
from obsrelay.domain.jobs import Identity, Job, NewJob, Queue, status_name, validate_ulid
from obsrelay.domain.presence import Call
from obsrelay.services.jobs import JobService

router = APIRouter(
    prefix="/api/v1/sites/{site}/jobs",
    tags=["jobs"],
    responses=ERRORS,
    route_class=StrictJsonRoute,
)
# The same job by its ULID alone, for people and scripts that have only that.
by_ulid_router = APIRouter(
    prefix="/api/v1/jobs", tags=["jobs"], responses=ERRORS, route_class=StrictJsonRoute
)

Jobs = Annotated[JobService, Depends(job_service)]


async def job_ulid(ulid: Annotated[str, Path(description="The job's ULID.")]) -> str:
    return validate_ulid(ulid)


Ulid = Annotated[str, Depends(job_ulid)]


def _after(after: str | None) -> str | None:
    return None if after is None else validate_ulid(after, "after")


def _claim_json(jobs: list[Job]) -> bytes:
    """The claimed jobs' answer."""
    return encode_strictly([job.to_data() for job in jobs])


@router.post("", status_code=201, summary="Submit a job")
async def submit_job(
    site: Annotated[str, Depends(site_name)], actor: Commander, body: SubmitJobIn, jobs: Jobs
) -> JobOut:
    new = NewJob(
        site=site,
        device_type=body.device,
        device_instance=body.instance,
        action=body.action,
        required_params=body.required_params,
        optional_params=body.optional_params,
        user=actor.user,
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
        status=status_name(status) if status else None,
        queue=Queue(queue),
        after=_after(after),
        newest_first=order == "newest",
        limit=limit,
    )
    return JobPageOut(jobs=[JobOut.of(job) for job in page.jobs], next_after=page.next_after)


@router.post(
    "/claim",
    summary="Claim the site's unread jobs (marks them RECEIVED)",
    response_model=list[JobOut],
)
async def claim_jobs(
    request: Request, site: str = Depends(site_name), body: ClaimIn | None = None
) -> Response:
    body = body or ClaimIn()
    queue = Queue(body.queue)
    wait, headers = longpoll.wait_and_headers(body.wait)
    async with acting_as_site(request, site, Call.poll(queue)):
        answer = await longpoll.claim(
            request,
            site,
            queue,
            _claim_json,
            headers,
            wait=wait,
            limit=body.limit,
            claim_id=body.claim_id,
        )
    return Response(answer, media_type="application/json", headers=headers)


@router.get("/{ulid}", summary="One job with its whole status history")
async def get_job(site: SiteForReading, ulid: Ulid, jobs: Jobs) -> JobDetailOut:
    job, history = await jobs.get(site, ulid)
    return JobDetailOut.with_history(job, history)


@router.post("/{ulid}/status", summary="Report a job's status (from the site)")
async def report_status(site: SiteAsReporter, ulid: Ulid, body: StatusIn, jobs: Jobs) -> JobOut:
    job = await jobs.report_status(
        site, ulid, Queue(body.queue), body.status, body.seconds_until_complete
    )
    return JobOut.of(job)


@router.post("/{ulid}/cancel", summary="Cancel a job the site has not received yet")
async def cancel_job(
    site: Annotated[str, Depends(site_name)], actor: Commander, ulid: Ulid, jobs: Jobs
) -> JobOut:
    return JobOut.of(await jobs.cancel(site, ulid, actor.user))


@by_ulid_router.get("/{ulid}", summary="One job, at whatever site, with its status history")
async def find_job(request: Request, ulid: Ulid, jobs: Jobs) -> JobDetailOut:
    # Credentials first, then the job: an unknown job and another site's job must look
    # the same to a caller who may not read that site.
    await access_of(request).reader_of_anything(credentials(request))
    job, history = await jobs.find(ulid)
    try:
        await ensure(request, Action.READ, job.site)
    except Forbidden:
        raise NotFound(f"There is no job {ulid}.") from None
    return JobDetailOut.with_history(job, history)


@by_ulid_router.post("/{ulid}/cancel", summary="Cancel a job, at whatever site")
async def cancel_found_job(
    request: Request, ulid: Ulid, jobs: Jobs, _who: Identity = Depends(user)
) -> JobOut:
    job, _ = await jobs.find(ulid)
    actor = await ensure(request, Action.COMMAND, job.site, count="jobs")
    return JobOut.of(await jobs.cancel(job.site, ulid, actor.user))
