"""The hosted jobs service's endpoints under /jobs, as the site software and browser call them."""

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from obsrelay.api import longpoll
from obsrelay.api.body import json_object, require
from obsrelay.api.compat.wire import (
    parse_queue,
    parse_time_range_ms,
    parse_ulid,
)
from obsrelay.api.deps import job_service
from obsrelay.api.errors import error_response, status_for
from obsrelay.api.identity import access_of, credentials, user_from_compat_body
from obsrelay.auth.tokens import AuthError
from obsrelay.domain.errors import ObsrelayError
from obsrelay.domain.jobs import (
    STARTED,
    Identity,
    NewJob,
    job_to_wire,
    normalize_seconds,
    validate_name,
    validate_params,
    validate_site,
)
from obsrelay.services.jobs import JobService

log = logging.getLogger("obsrelay.api")
router = APIRouter(prefix="/jobs", tags=["compatible: jobs"])

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


@router.post("/newjob", summary="Submit a job (from the web UI)")
async def newjob(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    user: Identity = Depends(user_from_compat_body),
    jobs: JobService = Depends(job_service),
) -> Response:
    require(body, *NEWJOB_KEYS)
    new = NewJob(
        site=validate_site(body["site"]),
        device_type=validate_name(body["device"], "device"),
        device_instance=validate_name(body["instance"], "instance"),
        action=validate_name(body["action"], "action"),
        required_params=validate_params(body["required_params"], "required_params"),
        optional_params=validate_params(body["optional_params"], "optional_params"),
        user=user,
    )
    access = access_of(request)
    access.limit("jobs", new.site)
    await access.may_command(user, new.site)
    submitted = await jobs.submit(new)
    return Response(submitted.job_json, media_type="application/json")


@router.post("/getnewjobs", summary="Claim a site's unread jobs (polled by the site)")
async def getnewjobs(request: Request) -> JSONResponse:
    """With `wait` (seconds, in the body or the query), holds the request until a job
    comes or the wait ends (long-poll)."""
    # Always a JSON list, whatever happens: anything else stops the site's poller.
    try:
        body = await json_object(request)
        require(body, "site")
        site = validate_site(body["site"])
        queue = parse_queue(body)
        asked = body.get("wait", request.query_params.get("wait"))
        wait, headers = longpoll.wait_and_headers(asked)
        await access_of(request).may_act_as_site(site, credentials(request))
        claimed = await longpoll.claim(request, site, queue, wait=wait)
    except ObsrelayError as error:
        return error_response(request.url.path, status_for(error), error.message)
    except AuthError as error:
        return error_response(request.url.path, error.status, error.message)
    except Exception:
        log.exception("getnewjobs failed")
        return error_response(
            request.url.path, 503, "The server could not read the job queue; try again."
        )
    return JSONResponse([job_to_wire(job) for job in claimed], headers=headers)


async def _report(
    request: Request, jobs: JobService, body: dict[str, Any], status: object
) -> JSONResponse:
    site = validate_site(body["site"])
    await access_of(request).may_act_as_site(site, credentials(request))
    job = await jobs.report_status(
        site,
        parse_ulid(body["ulid"]),
        parse_queue(body),
        status,
        normalize_seconds(body.get("secondsUntilComplete")),
    )
    return JSONResponse(job_to_wire(job))


@router.post("/updatejobstatus", summary="Report a job's status (from the site)")
async def updatejobstatus(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    jobs: JobService = Depends(job_service),
) -> JSONResponse:
    require(body, "site", "ulid", "newStatus")
    return await _report(request, jobs, body, body["newStatus"])


@router.post("/startjob", summary="Report that a job started (from the site)")
async def startjob(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    jobs: JobService = Depends(job_service),
) -> JSONResponse:
    require(body, "site", "ulid")
    return await _report(request, jobs, body, STARTED)


@router.post("/getrecentjobs", summary="A site's jobs from the last timeRange milliseconds")
async def getrecentjobs(
    request: Request,
    body: dict[str, Any] = Depends(json_object),
    jobs: JobService = Depends(job_service),
) -> JSONResponse:
    require(body, "site")
    site = validate_site(body["site"])
    await access_of(request).may_read(site, credentials(request))
    found = await jobs.recent(site, parse_time_range_ms(body, ONE_DAY_MS))
    return JSONResponse([job_to_wire(job) for job in found])
