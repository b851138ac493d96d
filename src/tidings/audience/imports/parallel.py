"""An import's batches applied on several PostgreSQL connections at once.

Most of a batch's cost is the server's: each new subscription and consent event runs its
foreign-key checks row by row, on one core per connection. The batches hold disjoint
addresses, so they can run side by side: each applier connection gets its own (temporary)
copy of one batch's staged addresses, merges it with the same statements and commits it,
while this thread reads the next batch. Each batch stays its own transaction, as in a serial
import, so an interrupted import can still simply be run again.
"""

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from queue import SimpleQueue
from typing import Any

from sqlalchemy import Connection, select, text

from tidings.audience.imports.merge import ImportOptions, MergeCounts, apply_batch
from tidings.audience.imports.staging import import_merged, planner_for_bulk

#: Applier connections an import uses on PostgreSQL: the import's two busy parts (the
#: server's row checks and this process) each get about a core of a small machine.
APPLIERS = 2

BatchDone = Callable[[int], None]
"""Called (in the importing thread) with the number of the last address of each batch done."""


@contextmanager
def _appliers(source: Connection, count: int) -> Iterator[SimpleQueue[Connection]]:
    """``count`` more connections from ``source``'s engine, each with an empty staging table
    of its own; dropped and handed back to the pool afterwards."""
    idle: SimpleQueue[Connection] = SimpleQueue()
    opened: list[Connection] = []
    try:
        for _ in range(count):
            connection = source.engine.connect()
            opened.append(connection)
            import_merged.create(connection)
            planner_for_bulk(connection, True)
            connection.commit()
            idle.put(connection)
        yield idle
    finally:
        for connection in opened:
            connection.rollback()
            import_merged.drop(connection, checkfirst=True)
            planner_for_bulk(connection, False)
            connection.commit()
            connection.close()


def _apply_copy(
    idle: SimpleQueue[Connection],
    options: ImportOptions,
    low: int,
    high: int,
    rows: Sequence[Sequence[Any]],
) -> MergeCounts:
    """Stage ``rows`` on an idle applier and merge them, in one transaction."""
    connection = idle.get()
    try:
        connection.execute(text(f"TRUNCATE {import_merged.name}"))
        driver = connection.connection.driver_connection
        columns = ", ".join(column.name for column in import_merged.columns)
        with (
            driver.cursor() as cursor,  # type: ignore[union-attr]
            cursor.copy(f"COPY {import_merged.name} ({columns}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        counts = MergeCounts()
        apply_batch(connection, options, low, high, counts)
        connection.commit()
        return counts
    except BaseException:
        connection.rollback()
        raise
    finally:
        idle.put(connection)


def apply_in_parallel(
    source: Connection,
    options: ImportOptions,
    total: int,
    appliers: int,
    report: MergeCounts,
    done: BatchDone | None = None,
) -> None:
    """Apply the ``total`` addresses staged on ``source`` in batches, ``appliers`` at a time,
    adding each batch's counts to ``report``; the first batch that fails stops the import
    with its error (batches already committed stay, as in a serial import)."""
    running: set[Future[MergeCounts]] = set()

    def finish(futures: set[Future[MergeCounts]]) -> None:
        for future in futures:
            counts = future.result()
            report.add(counts)
            if done:
                done(counts_high[future])

    counts_high: dict[Future[MergeCounts], int] = {}
    with _appliers(source, appliers) as idle, ThreadPoolExecutor(appliers) as pool:
        for low in range(1, total + 1, options.batch_size):
            high = min(low + options.batch_size - 1, total)
            batch = select(import_merged).where(import_merged.c.seq.between(low, high))
            rows = [tuple(row) for row in source.execute(batch)]
            source.commit()
            future = pool.submit(_apply_copy, idle, options, low, high, rows)
            counts_high[future] = high
            running.add(future)
            if len(running) >= appliers:
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                finish(finished)
        finished, _ = wait(running)
        finish(finished)
