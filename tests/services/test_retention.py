"""Messages (and the datastream's replay log) are forgotten after the retention period."""

import asyncio
import time

import httpx
import sqlalchemy as sa

from obsrelay.store.database import open_database
from obsrelay.store.schema import messages, stream_events
from tests.helpers import newlog_body
from tests.servers import start_server


async def _stored(url: str, site: str) -> tuple[int, int]:
    db = open_database(url)

    def count(conn: sa.Connection) -> tuple[int, int]:
        n_messages = conn.execute(
            sa.select(sa.func.count()).select_from(messages).where(messages.c.site == site)
        ).scalar_one()
        n_events = conn.execute(
            sa.select(sa.func.count())
            .select_from(stream_events)
            .where(stream_events.c.site == site)
        ).scalar_one()
        return n_messages, n_events

    try:
        return await db.read(count)
    finally:
        await db.close()


async def test_short_retention(database_url: str, tmp_path, site: str):
    server = start_server(
        database_url, tmp_path, OBSRELAY_MESSAGE_RETENTION="2", OBSRELAY_SWEEP_INTERVAL="0.3"
    )
    try:
        async with httpx.AsyncClient(base_url=server.url) as client:
            for i in range(3):
                await client.post("/logs/newlog", content=newlog_body(site, f"fresh {i}"))
            stale = newlog_body(site, "already old", timestamp=time.time() - 60)
            assert (await client.post("/logs/newlog", content=stale)).status_code == 200
            recent = (await client.get("/logs/recent-logs", params={"site": site})).json()
            assert [m["message"] for m in recent] == [f"fresh {i}" for i in range(3)]
            page = (await client.get(f"/api/v1/sites/{site}/messages")).json()
            assert len(page["messages"]) == 3

            await asyncio.sleep(3)
            assert (await client.get("/logs/recent-logs", params={"site": site})).json() == []
            assert (await client.get(f"/api/v1/sites/{site}/messages")).json()["messages"] == []
            assert await _stored(server.database_url, site) == (0, 0), "the sweep deleted them"
    finally:
        server.stop()
