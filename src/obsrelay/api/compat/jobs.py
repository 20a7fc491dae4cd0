"""The hosted jobs service's endpoints under /jobs, as the site software and browser call them."""

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from obsrelay.api import longpoll
from obsrelay.api.body import encode_strictly, json_object, require
from obsrelay.api.compat.wire import (
    job_to_wire,
    legacy_json,
    parse_queue,
    parse_time_range_ms,
)
from obsrelay.api.deps import services_of
from obsrelay.api.errors import response_for
from obsrelay.api.permissions import access_of, acting_as_site, body_user, ensure
from obsrelay.api.rawroute import RequestRoute
from obsrelay.auth.access import Action
from obsrelay.domain.errors import Unavailable
from obsrelay.domain.jobs import (
    Job,
    NewJob,
    normalize_seconds,
    validate_name,
    validate_params,
    validate_site,
    validate_ulid,
)
from obsrelay.domain.lifecycle import STARTED
from obsrelay.domain.presence import Call
from obsrelay.services.jobs import JobService

log = logging.getLogger("obsrelay.api")
router = APIRouter(prefix="/jobs", tags=["compatible: jobs"], route_class=RequestRoute)

NEWJOB_KEYS = (
    "site",
    "device",
    "instance",
    "action",
    "required_params",
    "optional_params",
    "user_name",
    "user_id",
)
ONE_DAY_MS = 24 * 3600 * 1000


def wire_json(jobs: list[Job]) -> bytes:
    """The jobs as the site software reads them."""
    return encode_strictly([job_to_wire(job.to_data()) for job in jobs])


@router.post("/newjob", summary="Submit a job (from the web UI)")
async def newjob(
    request: Request,
) -> Response:
    body, jobs = await json_object(request), services_of(request).jobs
    require(body, *NEWJOB_KEYS)
    site = validate_site(body["site"])
    device_type = validate_name(body["device"], "device")
    device_instance = validate_name(body["instance"], "instance")
    action = validate_name(body["action"], "action")
    required_params = validate_params(body["required_params"], "required_params")
    optional_params = validate_params(body["optional_params"], "optional_params")
    # The user comes from the token; the body names one only in `none` auth mode.
    named = None if access_of(request).checks_users else body_user(body)
    actor = await ensure(request, Action.COMMAND, site, count="jobs", fallback_user=named)
    new = NewJob(
        site=site,
        device_type=device_type,
        device_instance=device_instance,
        action=action,
        required_params=required_params,
        optional_params=optional_params,
        user=actor.user,
    )
    submitted = await jobs.submit(new)
    answer = legacy_json(job_to_wire(submitted.job.to_data()))
    return Response(answer, media_type="application/json")


@router.post("/getnewjobs", summary="Claim a site's unread jobs (polled by the site)")
async def getnewjobs(request: Request) -> Response:
    """With `wait` (seconds, in the body or the query), holds the request until a job
    comes or the wait ends (long-poll)."""
    # Always a JSON list, whatever happens: anything else stops the site's poller.
    headers: dict[str, str] = {}
    try:
        body = await json_object(request)
        require(body, "site")
        site = validate_site(body["site"])
        queue = parse_queue(body)
        wait, headers = longpoll.wait_and_headers(
            body.get("wait", request.query_params.get("wait"))
        )
        async with acting_as_site(request, site, Call.poll(queue)):
            answer = await longpoll.claim(request, site, queue, wire_json, headers, wait=wait)
    except Exception as error:
        response = response_for(request.url.path, error)
        if response is None:
            log.exception("getnewjobs failed")
            response = response_for(
                request.url.path, Unavailable("The server could not read the job queue; try again.")
            )
        assert response is not None
        return response
    return Response(answer, media_type="application/json", headers=headers)


async def _report(
    request: Request, jobs: JobService, body: dict[str, Any], status: object
) -> JSONResponse:
    site = validate_site(body["site"])
    ulid = validate_ulid(body["ulid"])
    queue = parse_queue(body)
    seconds = normalize_seconds(body.get("secondsUntilComplete"))
    async with acting_as_site(request, site, Call.STATUS, count="updates"):
        job = await jobs.report_status(site, ulid, queue, status, seconds)
    return JSONResponse(job_to_wire(job.to_data()))


@router.post("/updatejobstatus", summary="Report a job's status (from the site)")
async def updatejobstatus(
    request: Request,
) -> JSONResponse:
    body, jobs = await json_object(request), services_of(request).jobs
    require(body, "site", "ulid", "newStatus")
    return await _report(request, jobs, body, body["newStatus"])


@router.post("/startjob", summary="Report that a job started (from the site)")
async def startjob(
    request: Request,
) -> JSONResponse:
    body, jobs = await json_object(request), services_of(request).jobs
    require(body, "site", "ulid")
    return await _report(request, jobs, body, STARTED)


@router.post("/getrecentjobs", summary="A site's jobs from the last timeRange milliseconds")
async def getrecentjobs(
    request: Request,
) -> JSONResponse:
    body, jobs = await json_object(request), services_of(request).jobs
    require(body, "site")
    site = validate_site(body["site"])
    time_range = parse_time_range_ms(body, ONE_DAY_MS)
    await ensure(request, Action.READ, site)
    found = await jobs.recent(site, time_range)
    return JSONResponse([job_to_wire(job.to_data()) for job in found])
