"""What travels on the bus: three small notices, and their JSON between processes.

- `Committed`: site S has stored events up to number `seq` (and, with `new_jobs`, a
  new job to claim). Subscribers read the events from the store; waiting claims
  look again.
- `Live`: a live-only event, not stored, for the site's subscribers on every process.
- `Resync`: the bus was away and is back; what was published meanwhile is in the
  store, so everybody looks again. Made by a bus for its own process, never sent.

The JSON is the one the bus has always carried (`{"site", "seq", "jobs"}` and
`{"site", "topic", "data"}`), so processes of two versions can share a Redis.
"""

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Committed:
    site: str
    seq: int
    new_jobs: bool = False


@dataclass(frozen=True, slots=True)
class Live:
    site: str
    topic: str
    data: Any


@dataclass(frozen=True, slots=True)
class Resync:
    pass


Notice = Committed | Live | Resync


def coalesce(notices: list[Committed | Live]) -> list[Committed | Live]:
    """The same news in fewer notices: a site's Committed notices become one, at the
    place of its first, with the newest number and `new_jobs` if any of them had it (a
    subscriber reads the store from where it was, whatever the number it hears of).
    Live notices stay as they are, in order."""
    merged: list[Committed | Live] = []
    place: dict[str, int] = {}
    for notice in notices:
        if isinstance(notice, Live):
            merged.append(notice)
            continue
        at = place.get(notice.site)
        if at is None:
            place[notice.site] = len(merged)
            merged.append(notice)
            continue
        earlier = merged[at]
        assert isinstance(earlier, Committed)
        merged[at] = Committed(
            notice.site, max(earlier.seq, notice.seq), earlier.new_jobs or notice.new_jobs
        )
    return merged


def encode(notice: Committed | Live) -> str:
    """The notice as JSON text for another process."""
    if isinstance(notice, Committed):
        data: dict[str, Any] = {"site": notice.site, "seq": notice.seq}
        if notice.new_jobs:
            data["jobs"] = True
    else:
        data = {"site": notice.site, "topic": notice.topic, "data": notice.data}
    return json.dumps(data, separators=(",", ":"))


def decode(text: str | bytes) -> Committed | Live:
    """A notice from another process; ValueError when the text is not one."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("site"), str):
        raise ValueError("a bus notice names a site")
    seq = data.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool):
        return Committed(data["site"], seq, data.get("jobs") is True)
    if isinstance(data.get("topic"), str):
        return Live(data["site"], data["topic"], data.get("data"))
    raise ValueError("a bus notice has a seq or a topic")
