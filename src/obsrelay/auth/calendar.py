"""Reservations from the calendar service: who holds a site's time right now.

`POST {calendar}/get-event-at-time` with `{"site", "time"}` answers the events that
cover that time, each with a `creator_id`. Answers are cached per site for a few
seconds. A calendar that is down, slow or answers nonsense raises
CalendarUnavailable: the caller refuses (fails closed) rather than guess.
"""

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

CACHE_SECONDS = 5.0
TIMEOUT_SECONDS = 3.0


class CalendarUnavailable(Exception):
    """The calendar could not say who holds the site."""


@dataclass(frozen=True)
class Reservation:
    creator_id: str
    creator: str


class Calendar:
    def __init__(self, base_url: str, client: httpx.AsyncClient | None = None) -> None:
        self._url = base_url.rstrip("/") + "/get-event-at-time"
        self._client = client or httpx.AsyncClient(timeout=TIMEOUT_SECONDS)
        self._cache: dict[str, tuple[float, list[Reservation]]] = {}

    async def holders(self, site: str) -> list[Reservation]:
        """The reservations covering now at `site` (empty when nobody holds it)."""
        cached = self._cache.get(site)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            response = await self._client.post(self._url, json={"site": site, "time": now})
            response.raise_for_status()
            answer = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise CalendarUnavailable(str(error) or type(error).__name__) from None
        if not isinstance(answer, list) or not all(
            isinstance(event, dict) and isinstance(event.get("creator_id"), str) for event in answer
        ):
            raise CalendarUnavailable("the calendar's answer is not a list of events")
        reservations = [
            Reservation(event["creator_id"], str(event.get("creator") or event["creator_id"]))
            for event in answer
        ]
        self._cache[site] = (time.monotonic(), reservations)
        return reservations

    async def close(self) -> None:
        await self._client.aclose()
