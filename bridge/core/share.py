"""The running bridge as the backend of its Modbus TCP server.

Reads are answered from the words each bus task last read (exactly as the meter sent them)
while they are younger than ``max_age_s``. Otherwise one read of the needed block is queued on
the meter's bus like a command, ahead of routine polls; while it is in flight every client that
needs the same block waits for that one read. Writes become the MQTT command for the same
register and run through the command path (``allow_writes``, validation, read-back, result
message); its outcome becomes the Modbus answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence

from bridge.core.commands import CommandRequest, Outcome, publish_result
from bridge.core.poller import BusPoller, MeterRuntime
from bridge.core.share_rules import (
    block_to_read,
    check_in_map,
    command_for_write,
    fresh_words,
    map_registers,
)
from bridge.errors import (
    DEVICE_BUSY,
    DEVICE_FAILURE,
    GATEWAY_PATH_UNAVAILABLE,
    GATEWAY_TARGET_FAILED,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    ModbusError,
    ModbusExceptionReply,
    RequestRefused,
)

log = logging.getLogger(__name__)

#: How a command's outcome is answered; DONE is a normal answer.
OUTCOME_CODES = {
    Outcome.WRITES_DISABLED: ILLEGAL_FUNCTION,
    Outcome.INVALID: ILLEGAL_VALUE,
    Outcome.FAILED: DEVICE_FAILURE,
}

_Key = tuple[str, int, int]


class MeterShare:
    """Answers the Modbus server's requests from the pollers (implements its backend)."""

    def __init__(self, pollers: Iterable[BusPoller], max_age_s: float, *, wait_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        #: Longest wait for a queued read or write before the client gets exception 0B.
        self.wait_s = wait_s
        self.clock = clock
        self._meters: dict[int, tuple[BusPoller, MeterRuntime]] = {
            rt.cfg.effective_server_unit: (poller, rt)
            for poller in pollers for rt in poller.meters.values()}
        #: The registers of each meter's map (what its profile says a client may read).
        self._maps = {unit: map_registers(rt.profile.register_map)
                      for unit, (_, rt) in self._meters.items()}
        self._in_flight: dict[_Key, asyncio.Future[tuple[int, ...]]] = {}
        #: Reads answered from the cache, and reads that went to a bus (figures for tests and
        #: the status page).
        self.cache_hits = 0
        self.bus_reads = 0

    def units(self) -> list[int]:
        return sorted(self._meters)

    def _meter(self, unit: int) -> tuple[BusPoller, MeterRuntime]:
        found = self._meters.get(unit)
        if found is None:
            raise RequestRefused(GATEWAY_PATH_UNAVAILABLE, f"no meter is served as unit {unit}")
        poller, rt = found
        if not rt.online:
            raise RequestRefused(GATEWAY_TARGET_FAILED,
                                 f"{rt.name} (unit {rt.cfg.unit}) is offline: {rt.last_error}")
        return poller, rt

    # -- reads --------------------------------------------------------------------------------

    def cached(self, unit: int, address: int, count: int) -> Sequence[int] | None:
        """The words at 0-based ``address`` from the fresh cache, or None if the bus must be
        asked (the server decides whether this client may still pass a read through)."""
        _, rt = self._meter(unit)
        check_in_map(address + 1, count, self._maps[unit])
        words = fresh_words(rt.words, address + 1, count, self.clock(), self.max_age_s)
        if words is not None:
            self.cache_hits += 1
        return words

    async def read_through(self, unit: int, address: int, count: int) -> Sequence[int]:
        """One read on the meter's bus (shared with every client waiting for the block)."""
        poller, rt = self._meter(unit)
        first = address + 1
        check_in_map(first, count, self._maps[unit])
        config = rt.profile.config_block
        planned = [(b.start, b.count) for b in (*rt.full_blocks, config)]
        start, n = block_to_read(first, count, planned)
        key = (rt.name, start, n)
        future = self._in_flight.get(key)
        if future is None:
            future = self._queue_read(poller, rt, key)
        try:
            async with asyncio.timeout(self.wait_s):
                words = await asyncio.shield(future)
        except TimeoutError:
            raise RequestRefused(GATEWAY_TARGET_FAILED,
                                 f"{rt.name}: no read within {self.wait_s:g} s") from None
        return words[first - start:first - start + count]

    def _queue_read(self, poller: BusPoller, rt: MeterRuntime,
                    key: _Key) -> asyncio.Future[tuple[int, ...]]:
        _, start, n = key
        future: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        # A waiter that gave up must not leave an exception nobody retrieves.
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

        async def job() -> None:
            try:
                words = tuple(await poller.client.read_registers(rt.cfg.unit, start - 1, n))
            except ModbusExceptionReply as exc:
                future.set_exception(RequestRefused(exc.code, f"{rt.name}: {exc}"))
            except ModbusError as exc:
                future.set_exception(RequestRefused(GATEWAY_TARGET_FAILED, f"{rt.name}: {exc}"))
            except Exception as exc:  # a bug costs the clients one answer, never the bus task
                log.exception("%s: read for a Modbus client failed", rt.name)
                future.set_exception(RequestRefused(DEVICE_FAILURE, f"{rt.name}: {exc}"))
            else:
                rt.words[start] = (words, self.clock())
                future.set_result(words)
            finally:
                self._in_flight.pop(key, None)

        if not poller.submit(job):
            raise RequestRefused(DEVICE_BUSY, f"the bus of {rt.name} has too much queued")
        self._in_flight[key] = future
        self.bus_reads += 1
        return future

    # -- writes -------------------------------------------------------------------------------

    async def write(self, unit: int, address: int, values: Sequence[int]) -> None:
        """Write ``values`` from 0-based ``address``, one register after the other, each as the
        MQTT command for it; the first refusal ends the write."""
        poller, rt = self._meter(unit)
        for offset, raw in enumerate(values):
            key, payload = command_for_write(rt.profile, address + 1 + offset, raw)
            reply: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            if not poller.submit(CommandRequest(rt.name, key, payload, reply=reply)):
                publish_result(poller.hub, poller.topics, rt.name, key, payload.decode(), False,
                               None, "too many commands queued; try again")
                raise RequestRefused(DEVICE_BUSY, f"the bus of {rt.name} has too much queued")
            try:
                async with asyncio.timeout(self.wait_s):
                    outcome = await asyncio.shield(reply)
            except TimeoutError:
                raise RequestRefused(GATEWAY_TARGET_FAILED,
                                     f"{rt.name}: {key} not done within {self.wait_s:g} s"
                                     ) from None
            if outcome is not Outcome.DONE:
                raise RequestRefused(OUTCOME_CODES[outcome],
                                     f"{rt.name}: {key} {payload.decode()!r}: {outcome.value} "
                                     f"(see {poller.topics.result(rt.name)})")

    # -- identity -----------------------------------------------------------------------------

    def identity(self, unit: int) -> dict[int, str]:
        """Basic device identification (vendor, product code, revision) as read at start."""
        _, rt = self._meter(unit)
        if rt.identity is None:
            raise RequestRefused(GATEWAY_TARGET_FAILED, f"{rt.name}: identity not read yet")
        objects = {0: rt.identity.vendor, 1: rt.identity.product, 2: rt.identity.firmware}
        return {oid: text for oid, text in objects.items() if text is not None}

    def close(self) -> None:
        for future in self._in_flight.values():
            with contextlib.suppress(asyncio.InvalidStateError):
                future.cancel()
        self._in_flight.clear()
