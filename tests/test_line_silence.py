"""The t3.5 silence the client keeps: its last millisecond is slept outside the event loop's
timers (which wake on whole milliseconds), and bytes that arrive meanwhile still count."""

from __future__ import annotations

import asyncio
import socket
import time

from bridge.modbus.client import TIMER_RESOLUTION_S, BusClient
from bridge.modbus.links import TcpLink


def rtu_client(baudrate: int) -> BusClient:
    # Never connected: only the silence bookkeeping is exercised.
    return BusClient(TcpLink("127.0.0.1", 9, rtu=True, baudrate=baudrate))


async def test_bytes_arriving_while_the_rest_is_slept_start_a_new_silence() -> None:
    client = rtu_client(9600)
    assert client.silence > TIMER_RESOLUTION_S
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    # The line watch hears the socket as it hears pymodbus' transport: from a reader callback.
    loop.add_reader(ours, lambda: client._watch.packet(False, ours.recv(16)))
    try:
        # Half a millisecond of silence left: the rest is slept without a timer. A byte is
        # already waiting to be read when the sleep starts.
        before = time.monotonic() - client.silence + TIMER_RESOLUTION_S / 2
        client._watch.last_rx = before
        theirs.send(b"\x01")
        await client._wait_silence()
        heard = client._watch.last_rx
        assert heard > before, "the byte that came during the sleep was not read"
        assert time.monotonic() >= heard + client.silence, "the silence did not start again"
    finally:
        loop.remove_reader(ours)
        ours.close()
        theirs.close()


async def test_a_quiet_line_ends_its_silence_on_time() -> None:
    # Behaviour, not speed: the wait never ends before t3.5 after the last byte, whether the
    # rest is slept with a timer (9600 baud: 4 ms) or without one.
    for baudrate, left_s in ((9600, 0.0), (9600, 0.0035), (115200, 0.0005)):
        client = rtu_client(baudrate)
        client._watch.last_rx = time.monotonic() - left_s
        await client._wait_silence()
        assert time.monotonic() >= client._watch.last_rx + client.silence
