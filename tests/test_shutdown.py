"""What a SIGTERM leaves behind for the other replicas: no lease held by work this process stopped doing.

The end-to-end shutdown (a reply in flight still sent, exit 0 within the grace) is specified in test_serving.py;
these are the two ways leases end: workers finish the round in hand instead of being cut off, and an update the
grace cut off gives its claim up at once, so Telegram's redelivery is handled elsewhere without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from bot import database, workers
from bot.update_ledger import UpdateLedger


def _now() -> datetime:
    return datetime.now(UTC)


async def test_told_to_stop_a_worker_finishes_its_round_and_ends_without_being_cancelled() -> None:
    """The round in hand (which records what it claimed) runs to its end; no further round starts."""
    stopping = asyncio.Event()
    started, release = asyncio.Event(), asyncio.Event()
    rounds: list[str] = []

    async def one_round() -> None:
        started.set()
        await release.wait()
        rounds.append("recorded")

    token = workers.STOPPING.set(stopping)
    try:
        task = asyncio.create_task(workers.keep_doing(one_round, every=timedelta(hours=1), what="a test worker"))
    finally:
        workers.STOPPING.reset(token)
    await started.wait()
    stopping.set()
    release.set()
    await asyncio.wait_for(task, 5)

    assert rounds == ["recorded"]
    assert not task.cancelled()


async def test_work_that_costs_nothing_to_interrupt_is_cancelled_as_soon_as_the_process_stops() -> None:
    """A calendar sync loop does not look at the event: it is cancelled at once, not waited for."""
    stopping = asyncio.Event()
    token = workers.STOPPING.set(stopping)
    try:
        task = asyncio.create_task(workers.until_stopping(asyncio.sleep(3600)))
    finally:
        workers.STOPPING.reset(token)
    await asyncio.sleep(0)
    stopping.set()

    await asyncio.wait_for(task, 5)


async def test_an_update_cut_off_by_the_shutdown_is_given_up_at_once_for_another_replica(database_url: str) -> None:
    """While in hand, another replica may not take the update; once cancelled, it may at once (not after the lease)."""
    engine = database.create_engine(database_url)
    try:
        await database.upgrade(engine)
        stopping = UpdateLedger(engine, locks=None, clock=_now)
        other = UpdateLedger(engine, locks=None, clock=_now)
        in_hand = asyncio.Event()

        async def handle() -> None:
            async with stopping.handling(4242, chat_id=None) as claimed:
                assert claimed
                in_hand.set()
                await asyncio.sleep(3600)

        task = asyncio.create_task(handle())
        await in_hand.wait()
        taken_while_in_hand = await other.claim(4242, chat_id=None)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        taken_after = await other.claim(4242, chat_id=None)
    finally:
        await engine.dispose()

    assert not taken_while_in_hand
    assert taken_after
