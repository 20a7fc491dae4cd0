"""MessageWrites on both backends: posts stored with their events, whether they come
alone or many together (PostgreSQL's batches), each post all or nothing."""

import asyncio

from obsrelay.domain.ids import MonotonicUlids
from obsrelay.domain.messages import Message
from obsrelay.services.stream import encode
from obsrelay.store import messages as queries
from obsrelay.store import stream
from obsrelay.store.database import Database
from obsrelay.store.message_writes import MessageWrites

_ULIDS = MonotonicUlids()
_NOW_MS = 1_790_000_000_000


def _post(site: str, count: int, text: str = "hello") -> list[Message]:
    return [
        Message(_ULIDS.new(_NOW_MS), site, _NOW_MS / 1000, "info", f"{text} {i}")
        for i in range(count)
    ]


def _data(post: list[Message]) -> list[str]:
    return [encode(message.to_data()) for message in post]


async def _events(db: Database, site: str) -> list[tuple[int, str]]:
    rows = await db.read(lambda conn: stream.events_after(conn, site, 0, 10_000))
    return [(row.seq, row.data) for row in rows]


async def _stored(db: Database, site: str) -> list[Message]:
    return await db.read(
        lambda conn: queries.page_messages(conn, site, not_before=0, after=None, limit=10_000)
    )


async def test_posts_stored_together_keep_each_sites_numbers_gap_free(db: Database, site: str):
    writes = MessageWrites(db, "message")
    sites = [f"{site}-{letter}" for letter in "ab"]
    # Posts of 1, 2 and 3 messages, on two sites, all at once.
    posts = [_post(sites[i % 2], 1 + i % 3, text=f"p{i}") for i in range(30)]
    firsts = await asyncio.gather(
        *(writes.insert(post[0].site, post, _data(post), _NOW_MS) for post in posts)
    )
    for name in sites:
        mine = [
            (first, post) for first, post in zip(firsts, posts, strict=True) if post[0].site == name
        ]
        expected, number = [], 1
        for first, post in mine:
            # Each post's messages have consecutive numbers, the posts in the order they came.
            assert first == number
            expected += [(first + i, text) for i, text in enumerate(_data(post))]
            number += len(post)
        assert await _events(db, name) == expected
        assert await _stored(db, name) == [message for _, post in mine for message in post]


async def test_a_bad_post_among_many_fails_alone_and_whole(db: Database, site: str):
    writes = MessageWrites(db, "message")
    taken = _post(site, 1)
    await writes.insert(site, taken, _data(taken), _NOW_MS)
    bad = [*_post(site, 1), taken[0]]  # its second message's ULID is taken
    posts = [_post(site, 2), bad, _post(site, 1)]
    results = await asyncio.gather(
        *(writes.insert(site, post, _data(post), _NOW_MS) for post in posts),
        return_exceptions=True,
    )
    assert results[0] == 2 and results[2] == 4, results
    assert "unique" in str(results[1]).lower(), results[1]  # the driver's own words
    assert [seq for seq, _ in await _events(db, site)] == [1, 2, 3, 4]
    # Nothing of the bad post is stored, not even its first, good, message.
    assert await _stored(db, site) == [*taken, *posts[0], *posts[2]]
