"""The Python client of obsrelay: for site software (`SiteClient`, `ObsrelayLogHandler`)
and for people and scripts (`UserClient`). Sync, on httpx; `AsyncSiteClient` for asyncio.
"""

from obsrelay.client.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidRequest,
    JobNotFound,
    ObsrelayError,
    PermissionDenied,
    RateLimited,
    RequestRejected,
    ServerUnavailable,
)
from obsrelay.client.loghandler import ObsrelayLogHandler
from obsrelay.client.models import Frame, HistoryEntry, Job, Message, QueueStatus, Site
from obsrelay.client.site import AsyncSiteClient, SiteClient
from obsrelay.client.user import UserClient

__all__ = [
    "AsyncSiteClient",
    "AuthenticationFailed",
    "Conflict",
    "Frame",
    "HistoryEntry",
    "InvalidRequest",
    "Job",
    "JobNotFound",
    "Message",
    "ObsrelayError",
    "ObsrelayLogHandler",
    "PermissionDenied",
    "QueueStatus",
    "RateLimited",
    "RequestRejected",
    "ServerUnavailable",
    "Site",
    "SiteClient",
    "UserClient",
]
