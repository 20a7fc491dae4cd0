"""Group commit for PostgreSQL: the writes (or reads) of one kind that arrive while the
previous batch is under way go together, as one statement, in the next batch.

A write waits for its batch to commit, so what a caller is answered is stored, as
before. The batch takes the commit's flush and the locks it needs (a site's stream
head) once for all of its writes: under load, batches grow and each write costs less;
a write that arrives alone goes at once, in a batch of one. A read in a batch starts
after its caller asked, so it sees every write committed before.

When a batch fails for any reason but an unavailable database, each of its writes is
tried again alone, so that one bad write fails only its own caller.

A batch statement takes its rows as one array per column (`columns_of`), unnested in
SQL (`unnest_cte`), and answers the event number each row got (`event_numbers`).
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from obsrelay.store.database import DatabaseUnavailable

Item = TypeVar("Item")
Result = TypeVar("Result")
# The most items one statement takes: past this the arrays cost more to send than the
# batch saves, and the callers after them wait for the next batch.
MAX_BATCH = 500
_POSTGRESQL = make_url("postgresql://").get_dialect()()


def typed_columns(table: sa.Table, names: list[str]) -> list[tuple[str, str]]:
    """Each column of `table` in `names` with its PostgreSQL type."""
    return [(name, table.c[name].type.compile(dialect=_POSTGRESQL)) for name in names]


def unnest_cte(name: str, columns: list[tuple[str, str]]) -> str:
    """SQL: CTE `name`, the rows of the arrays passed as the parameters named after
    `columns` (name, PostgreSQL type), each numbered n from 1."""
    arrays = ", ".join(f"CAST(:{column} AS {kind}[])" for column, kind in columns)
    names = ", ".join(column for column, _ in columns)
    return f"{name} AS (SELECT * FROM unnest({arrays}) WITH ORDINALITY AS {name}({names}, n))"


def columns_of(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """The rows' values as one array per column (the batch statements' parameters)."""
    return {name: [row[name] for row in rows] for name in rows[0]}


def event_numbers(found: list[Any], count: int) -> list[int | None]:
    """The event number of each of `count` items, from the (n, seq) rows of a batch
    statement; None for an item that stored nothing."""
    numbers: list[int | None] = [None] * count
    for row in found:
        numbers[row["n"] - 1] = int(row["seq"])
    return numbers


class Batches(Generic[Item, Result]):
    """Runs `store(items)` for batches of the items given to `add`, one batch at a time.

    `store` returns one result per item, in order. `key`: items with the same key never
    share a batch (a statement may change a row only once).
    """

    def __init__(
        self,
        store: Callable[[list[Item]], Awaitable[list[Result]]],
        key: Callable[[Item], Hashable] = id,
    ) -> None:
        self._store = store
        self._key = key
        self._pending: list[tuple[Item, asyncio.Future[Result]]] = []
        self._storing: asyncio.Task[None] | None = None

    async def add(self, item: Item) -> Result:
        """Stores `item` in the next batch; its result once the batch has committed."""
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._storing is None:
            self._storing = asyncio.get_running_loop().create_task(self._store_all())
        return await future

    def _next_batch(self) -> list[tuple[Item, asyncio.Future[Result]]]:
        """The pending items (callers that gave up are dropped), at most MAX_BATCH, but none
        whose key an earlier one has: those wait for the batch after."""
        batch: list[tuple[Item, asyncio.Future[Result]]] = []
        later: list[tuple[Item, asyncio.Future[Result]]] = []
        keys: set[Hashable] = set()
        for item, future in self._pending:
            if future.done():
                continue
            key = self._key(item)
            if key in keys or len(batch) >= MAX_BATCH:
                later.append((item, future))
            else:
                keys.add(key)
                batch.append((item, future))
        self._pending = later
        return batch

    async def _store_all(self) -> None:
        try:
            while self._pending:
                batch = self._next_batch()
                if batch:
                    await self._store_batch(batch)
        finally:
            self._storing = None

    async def _store_batch(self, batch: list[tuple[Item, asyncio.Future[Result]]]) -> None:
        try:
            results = await self._store([item for item, _ in batch])
        except DatabaseUnavailable as error:
            for _, future in batch:
                _fail(future, error)
        except Exception as error:
            if len(batch) == 1:
                _fail(batch[0][1], error)
            else:
                for one in batch:  # each alone: only a bad one fails
                    await self._store_batch([one])
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # its caller may have given up meanwhile
                    future.set_result(result)


def _fail(future: "asyncio.Future[Result]", error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
