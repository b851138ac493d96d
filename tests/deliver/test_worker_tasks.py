"""A worker whose result writer or lease renewer dies stops with that error: it must not
wait for room to write results for ever, nor go on sending what nobody will record."""

import asyncio
import contextlib

from tests.builders import one_off_edition
from tests.smtpserver import smtp_server
from tidings.config import Settings
from tidings.db.engine import Database
from tidings.deliver.runner import make_transports
from tidings.deliver.worker import Worker
from tidings.deliver.writebehind import UNWRITTEN_LIMIT


class BrokenWriter(Exception):
    """Not a database outage (which the writer rides out): a bug."""


def test_a_worker_whose_result_writer_died_stops_with_its_error(
    db: Database, settings: Settings
) -> None:
    one_off_edition(db, settings, 200)
    with smtp_server() as (handler, port):
        here = settings.model_copy(
            update={"smtp_url": f"smtp://127.0.0.1:{port}", "smtp_pool_size": 2}
        )

        def broken(*_: object) -> object:
            raise BrokenWriter("the result writer broke")

        async def scenario() -> BaseException | None:
            worker = Worker(db, here, make_transports(here))
            worker.store.write = broken  # type: ignore[method-assign]
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(drain=False, stop=stop))
            await asyncio.wait([running], timeout=60)  # it ends by itself, at once
            ended = running.done()
            stop.set()
            with contextlib.suppress(BrokenWriter):
                await running
            assert ended, "the worker went on without its result writer"
            return running.exception()

        assert isinstance(asyncio.run(scenario()), BrokenWriter)
    # Nothing it sent was recorded: it stopped once the unwritten results filled up.
    assert len(handler.recipients()) <= UNWRITTEN_LIMIT - 1 + 2
