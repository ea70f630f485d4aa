"""The broker gone for a long while: the bridge keeps reading, holds nothing unbounded, and is
back seconds after the broker is (the retry interval is capped, it does not grow to minutes).

`python -m tests.faults.soak --broker-outage-s 300` runs the five-minute version."""

from __future__ import annotations

import asyncio
import gc
import logging
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from bridge.mqtt.link import RECONNECT_MAX_S, client_log
from bridge.sim.broker import Broker
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus, total_polls

UNITS = list(range(1, 11))
OUTAGE_S = 25.0


async def test_long_broker_outage(broker: Broker, sim_factory: Any, tmp_path: Path,
                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.mqtt.link")
    sim = sim_factory(UNITS, 40)
    _, port = await sim.serve_tcp()
    meters = [{"name": f"m{u}", "unit": u, "poll_interval": 0} for u in UNITS]
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path,
                        publish={"min_interval_s": 0})
    loop = asyncio.get_running_loop()
    async with running(cfg) as service:
        async with recorder(broker.port) as rec:
            for u in UNITS:
                await rec.wait_message(f"series4000/m{u}/state")
        hub_size = service.hub.size
        broker.stop()
        await asyncio.sleep(2.0)  # noticed, warmed up
        gc.collect()
        tracemalloc.start()
        try:
            traced_start = tracemalloc.get_traced_memory()[0]
            polls_start = total_polls(service)
            queued_max = 0
            t0 = loop.time()
            while loop.time() - t0 < OUTAGE_S:
                await asyncio.sleep(0.5)
                queued_max = max(queued_max, service.link.queued)
            gc.collect()
            traced_growth_kb = (tracemalloc.get_traced_memory()[0] - traced_start) / 1024
        finally:
            tracemalloc.stop()
        polls = total_polls(service) - polls_start
        assert not service.link.connected
        connects = service.link.connects
        broker.start()  # no persistence: every retained message is gone
        back = loop.time()
        async with recorder(broker.port) as rec:
            await rec.wait_for(
                lambda r: all(r.last(f"series4000/m{u}/state") for u in UNITS)
                and getattr(r.last("series4000/m1/availability"), "payload", "") == "online"
                and r.last("homeassistant/device/series4000_main_m1/config"),
                RECONNECT_MAX_S + 10, "states, availability and discovery after the outage")
        back_s = loop.time() - back
        assert service.hub.size == hub_size
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    print(f"\nbroker outage {OUTAGE_S:.0f} s: {polls} polls meanwhile, queue max {queued_max}, "
          f"traced memory {traced_growth_kb:+.0f} kB, everything back {back_s:.1f} s after the "
          f"broker, {len(errors)} error line(s)")
    assert polls >= 100  # reading went on
    assert queued_max == 0  # retained values are not queued; they come from the hub
    assert traced_growth_kb < 500
    assert back_s < RECONNECT_MAX_S + 5
    assert service.link.connects == connects + 1
    # One line per distinct problem (the disconnect, then the refusals), not one per retry.
    refused = [r for r in errors if "refused" in r.getMessage()]
    assert len(refused) == 1 and len(errors) <= 2, [r.getMessage() for r in errors]


def test_paho_socket_errors_leave_the_report_to_the_link(
        caplog: pytest.LogCaptureFixture) -> None:
    # paho writes one error line per failed socket read; the link's own line (once per
    # distinct problem) says the same, so paho's would add a line to every outage.
    caplog.set_level(logging.DEBUG, logger=client_log.name)
    client_log.error("failed to receive on socket: %s", BrokenPipeError(32, "Broken pipe"))
    client_log.error("timeout on socket: %s", TimeoutError("timed out"))
    client_log.error("Caught exception in on_message: %s", ValueError("bad"))
    assert [r.getMessage() for r in caplog.records] == ["Caught exception in on_message: bad"]
