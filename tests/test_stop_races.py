"""A stop that arrives together with a wake-up still stops the waiting task.

Python 3.11's ``asyncio.wait_for`` returns and drops the cancellation when what it waits for is
done before the cancelled task runs again; a task that loops around it never ends, and the
service's stop then waits for ever. Each case here orders the wake-up and the cancellation the
way that loses it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.app.service import Service
from bridge.mqtt.hub import AVAILABILITY
from tests.service_helpers import bridge_config, tcp_bus

#: Longer than any test may take: a task that lost its cancellation waits this long.
LONG_S = 60.0


def service(tmp_path: Path) -> Service:
    # Nothing listens on port 9 or 1: the service is built, never run.
    config = bridge_config(1, [tcp_bus(9, [{"name": "m1", "unit": 1}])], tmp_path)
    return Service(config)


def wake(svc: Service) -> None:
    """A meter's availability published: the bridge state and the status page both wake."""
    svc.hub.retain(AVAILABILITY, svc.topics.availability("m1"), "online")


async def cancelled_as_woken(run: Callable[[], Awaitable[Any]], svc: Service,
                             turns: int) -> None:
    """Wake the waiting task, let ``turns`` turns of the loop pass (what it waits for is then
    done, the task itself not yet run again), and cancel it."""
    task = asyncio.create_task(run())
    await asyncio.sleep(0.05)  # the task waits (for a wake-up, or LONG_S)
    wake(svc)
    for _ in range(turns):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


async def test_the_bridge_state_task_stops_when_woken_as_it_is_stopped(tmp_path: Path) -> None:
    svc = service(tmp_path)
    svc.report.interval_s = LONG_S
    svc.report.publish_if_due()  # the first state goes out at once; then it waits
    # The event's wait is a task of its own inside wait_for: it ends one turn after the wake.
    await cancelled_as_woken(svc.report.run, svc, turns=1)


async def test_a_status_page_wait_stops_when_woken_as_it_is_stopped(tmp_path: Path) -> None:
    svc = service(tmp_path)
    # A plain future: done at once.
    await cancelled_as_woken(lambda: svc.board.wait_changed(LONG_S), svc, turns=0)
