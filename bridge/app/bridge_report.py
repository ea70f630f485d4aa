"""Publishes the bridge's own state (``<base>/bridge/state``) from the status board.

The figures are the status snapshot's (one owner for each: :mod:`bridge.core.status`), read
through the same :class:`StatusBoard` the status page uses; :mod:`bridge.core.bridge_state`
shapes them and decides when a message is due. A meter's availability message wakes the task
(its bus's online count may have changed); otherwise it sends at most every 30 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

from bridge.app.status_board import StatusBoard
from bridge.core import status
from bridge.core.bridge_state import (
    JSON,
    STATE_INTERVAL_S,
    Sent,
    bridge_state,
    due,
    online_counts,
)
from bridge.model.topics import Topics
from bridge.mqtt.hub import STATE, Hub


class BridgeReport:
    def __init__(self, board: StatusBoard, hub: Hub, topics: Topics,
                 mqtt_published: Callable[[], int],
                 interval_s: float = STATE_INTERVAL_S) -> None:
        self.board = board
        self.hub = hub
        self.topics = topics
        self.mqtt_published = mqtt_published
        self.interval_s = interval_s
        self.last: Sent | None = None
        self._wake = asyncio.Event()
        self._availability = {topics.availability(name)
                              for poller in board.pollers for name in poller.meters}
        hub.observers.append(self._observe)

    def _observe(self, topic: str, payload: str, retain: bool) -> None:
        if topic in self._availability:
            self._wake.set()

    def state(self) -> JSON:
        board = self.board
        started = status.wall_time(board.started, board.clock(), board.wall())
        return bridge_state(board.snapshot(), started, self.mqtt_published())

    def publish_if_due(self) -> bool:
        state = self.state()
        online = online_counts(state)
        now = self.board.clock()
        if not due(self.last, online, now, self.interval_s):
            return False
        self.hub.retain(STATE, self.topics.bridge_state, json.dumps(state))
        self.last = Sent(now, online)
        return True

    async def run(self) -> None:
        while True:
            self._wake.clear()
            self.publish_if_due()
            assert self.last is not None
            wait_s = max(0.0, self.last.at + self.interval_s - self.board.clock())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._wake.wait()
