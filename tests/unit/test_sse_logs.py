"""sse-logs' seam without a server: what each feed hands a client's stream, and when.

Both variants deliver the same lines in the same order with the same ids; they
differ in when (a poll vs at once), in what a slow reader costs, and in what
they keep. What that does to a thousand clients is the contract test's
(tests/scenarios/test_sse_logs.py); the memory and CPU per 1,000 clients are the
bench's (lab/bench/log_transports.py).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncGenerator

import pytest

from faults.sse_logs import (
    SCENARIO,
    Batch,
    Gap,
    LogFeedParams,
    LogLine,
    PolledList,
    PushedQueues,
)
from lab.bench.log_transports import per_thousand

pytestmark = pytest.mark.unit


def _texts(batch: Batch) -> list[str]:
    return [item.text for item in batch if isinstance(item, LogLine)]


async def _next(stream: AsyncGenerator[Batch, None], timeout: float = 2.0) -> Batch:
    return await asyncio.wait_for(anext(stream), timeout)


async def _followed_by(feed: PushedQueues, count: int) -> None:
    """Until `count` streams have taken their first step (registered their client)."""
    for _ in range(1000):
        if len(feed.followers) == count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(feed.followers)} followers, not {count}")


def test_a_pushed_line_reaches_every_follower_at_once_and_a_resume_replays_the_rest() -> None:
    async def scenario() -> None:
        feed = PushedQueues(LogFeedParams())
        feed.publish('{"msg": "before anyone followed"}')
        one, two = feed.follow(None, idle_s=5.0), feed.follow(None, idle_s=5.0)
        # The generators start (and register) on their first step: the line comes later.
        first = asyncio.ensure_future(_next(one))
        second = asyncio.ensure_future(_next(two))
        await _followed_by(feed, 2)
        started = time.perf_counter()
        feed.publish('{"msg": "now"}')
        got = await first, await second
        assert time.perf_counter() - started < 0.5  # pushed, not found by a poll
        assert [_texts(b) for b in got] == [['{"msg": "now"}'], ['{"msg": "now"}']]
        assert got[0][0] is got[1][0]  # one object for all: its wire forms encoded once
        line = got[0][0]
        assert isinstance(line, LogLine) and line.seq == 2
        assert line.sse == b'data: {"msg": "now"}\nid: 2\n\n'
        assert json.loads(line.ndjson) == {"id": 2, "line": {"msg": "now"}}
        # A client that saw id 1 and reconnects gets what came after it, once.
        resumed = feed.follow(1, idle_s=5.0)
        assert _texts(await _next(resumed)) == ['{"msg": "now"}']
        for stream in (one, two, resumed):
            await stream.aclose()
        assert feed.followers == set()  # however a stream ends, its client is forgotten

    asyncio.run(scenario())


def test_a_slow_reader_loses_its_oldest_lines_and_is_told_how_many() -> None:
    async def scenario() -> None:
        feed = PushedQueues(LogFeedParams(client_backlog=3, replay_lines=5))
        stream = feed.follow(None, idle_s=5.0)
        waiting = asyncio.ensure_future(_next(stream))
        await _followed_by(feed, 1)
        # Published from the loop's thread without yielding to it: the reader reads
        # nothing until all ten are in.
        for n in range(10):
            feed.publish(f'{{"n": {n}}}')
        batch = await waiting
        assert batch[0] == Gap(7)
        assert _texts(batch) == ['{"n": 7}', '{"n": 8}', '{"n": 9}']
        assert len(feed.recent) == 5  # the replay buffer is bounded too
        await stream.aclose()

    asyncio.run(scenario())


def test_a_line_logged_in_another_thread_is_handed_to_the_loop() -> None:
    async def scenario() -> None:
        feed = PushedQueues(LogFeedParams())
        stream = feed.follow(None, idle_s=5.0)
        waiting = asyncio.ensure_future(_next(stream))
        await _followed_by(feed, 1)
        thread = threading.Thread(target=feed.publish, args=('{"from": "a thread"}',))
        thread.start()
        thread.join()
        assert _texts(await waiting) == ['{"from": "a thread"}']
        await stream.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("variant", ["faulty", "fixed"])
def test_a_quiet_log_gives_an_empty_batch_for_the_keep_alive(variant: str) -> None:
    async def scenario() -> None:
        feed = SCENARIO.build(variant, LogFeedParams(poll_seconds=0.05))  # type: ignore[arg-type]
        stream = feed.follow(None, idle_s=0.2)
        assert await _next(stream) == []
        await stream.aclose()

    asyncio.run(scenario())


def test_the_polled_feed_finds_a_line_only_at_its_next_poll_and_keeps_every_line() -> None:
    async def scenario() -> None:
        poll = 0.3
        feed = PolledList(LogFeedParams(poll_seconds=poll))
        stream = feed.follow(None, idle_s=60.0)
        waiting = asyncio.ensure_future(_next(stream))
        await asyncio.sleep(0.01)  # the client is asleep in its poll now
        published = time.perf_counter()
        feed.publish('{"msg": "late"}')
        assert _texts(await waiting) == ['{"msg": "late"}']
        # Found by the poll that was sleeping when the line came, not at once.
        assert time.perf_counter() - published > poll / 2
        resumed = feed.follow(0, idle_s=60.0)
        assert _texts(await _next(resumed)) == ['{"msg": "late"}']
        for _ in range(100):
            feed.publish("{}")
        assert len(feed.lines) == 101  # never trimmed: every line since start-up
        await stream.aclose()
        await resumed.aclose()

    asyncio.run(scenario())


def test_a_record_is_formatted_once_for_stdout_and_the_live_log() -> None:
    import logging

    from target_app.observability import JsonFormatter

    record = logging.LogRecord("target_app", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    first, second = JsonFormatter(), JsonFormatter()
    text = first.format(record)
    assert json.loads(text)["msg"] == "hello x"
    assert second.format(record) is text  # the second handler's formatter reuses it


def test_the_bench_costs_each_thousand_clients_over_its_series_zero_point() -> None:
    points = [
        {"mix": "sse", "worker_class": "pushed", "clients": 0, "rss_mb": 100.0, "cpu_cores": 0.1},
        {"mix": "sse", "worker_class": "pushed", "clients": 2000, "rss_mb": 160.0,
         "cpu_cores": 0.5},
        {"mix": "ws", "worker_class": "pushed", "clients": 1000, "rss_mb": 130.0,
         "cpu_cores": None},
    ]  # fmt: skip
    per_thousand(points)
    assert points[1]["rss_per_1000_mb"] == pytest.approx(30.0)
    assert points[1]["cpu_per_1000_cores"] == pytest.approx(0.2)
    assert points[0]["rss_per_1000_mb"] == 0.0  # the zero point costs nothing over itself
    assert points[2]["rss_per_1000_mb"] is None  # no zero point of its own to compare with
