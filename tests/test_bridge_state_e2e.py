"""The bridge's own state and device, with a real broker and simulated meters on a Modbus TCP bus
and an RTU-over-TCP bus."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from bridge import __version__
from bridge.core.bridge_state import LINE_USE_AFTER_S, STATE_INTERVAL_S
from bridge.sim.broker import Broker
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus

STATE = "series4000/bridge/state"
DISCOVERY = "homeassistant/device/series4000_main_bridge/config"


def meter(name: str, unit: int) -> dict[str, Any]:
    return {"name": name, "unit": unit, "poll_interval": 0.2, "config_interval": 5}


async def test_bridge_state_and_its_entities(broker: Broker, sim_factory: Any,
                                             tmp_path: Path) -> None:
    panel_sim = sim_factory([1, 2], [40, 10])
    shed_sim = sim_factory([5], 12)
    _, panel_port = await panel_sim.serve_tcp()
    _, shed_port = await shed_sim.serve_rtu_over_tcp()
    buses = [tcp_bus(panel_port, [meter("m1", 1), meter("m2", 2)]),
             tcp_bus(shed_port, [meter("m5", 5)], name="shed", transport="rtu_over_tcp")]
    cfg = bridge_config(broker.port, buses, tmp_path)
    async with recorder(broker.port) as rec, running(cfg) as service:
        start = asyncio.get_running_loop().time()
        # Every meter online: the count changed since the start, so the state says so at once.
        state = (await rec.wait_for(
            lambda r: (m := r.last(STATE)) and m.json()["buses"]["panel"]["meters_online"] == 2
            and m.json()["buses"]["shed"]["meters_online"] == 1 and m, 15,
            "every meter online in the bridge state")).json()
        assert state["version"] == __version__
        assert datetime.fromisoformat(state["started"]).tzinfo is not None
        panel, shed = state["buses"]["panel"], state["buses"]["shed"]
        assert panel["meters_configured"] == 2 and shed["meters_configured"] == 1
        assert panel["line_use_pct"] is None  # Modbus TCP: no serial line to measure
        # The first message, at the start, has no line use yet (the start's burst of reads).
        first = rec.on(STATE)[0].json()
        assert first["uptime_s"] < LINE_USE_AFTER_S
        assert first["buses"]["shed"]["line_use_pct"] is None
        assert panel["read_errors"] == shed["read_errors"] == 0
        # The figures are the status board's (the status page's), one owner for each.
        snapshot = service.board.snapshot()
        by_bus = {b["name"]: b for b in snapshot["buses"]}
        assert 0 < panel["requests"] <= by_bus["panel"]["transactions"]
        assert 0 < shed["requests"] <= by_bus["shed"]["transactions"]
        # Counted by the MQTT link as it sends (nothing yet, if this state came before the
        # connection); checked again below.
        assert 0 <= state["mqtt"]["published"] <= service.link.published

        # The bridge's device carries the entities of both buses.
        disc = json.loads((await rec.wait_message(DISCOVERY)).payload)
        assert disc["device"]["sw_version"] == __version__
        comps = disc["components"]
        assert {"connected", "started", "mqtt_published", "bus_panel_meters_online",
                "bus_panel_requests", "bus_panel_read_errors", "bus_shed_meters_online",
                "bus_shed_requests", "bus_shed_read_errors", "bus_shed_line_use"} == set(comps)
        assert comps["bus_shed_line_use"]["state_topic"] == STATE

        # A meter goes offline: the state follows at once, not 30 s later.
        shed_sim.meters[5].alive = False
        offline = (await rec.wait_for(lambda r: (m := r.last(STATE))
                                      and m.json()["buses"]["shed"]["meters_online"] == 0
                                      and m, 10, "the shed bus at 0 online")).json()
        assert offline["buses"]["shed"]["read_errors"] > 0
        assert offline["buses"]["panel"]["meters_online"] == 2
        assert 0 < offline["mqtt"]["published"] <= service.link.published
        assert (await rec.wait_message("series4000/m5/availability")).payload == "offline"
        shed_sim.meters[5].alive = True
        back = (await rec.wait_for(lambda r: (m := r.last(STATE))
                                   and m.json()["buses"]["shed"]["meters_online"] == 1 and m,
                                   15, "the shed bus back at 1 online")).json()
        # The availability of a meter that comes and goes is published at most every 10 s, so
        # by now the line's use is reported.
        assert back["uptime_s"] >= LINE_USE_AFTER_S
        assert 0.0 < back["buses"]["shed"]["line_use_pct"] <= 100.0
        elapsed = asyncio.get_running_loop().time() - start
        # Never more than one message per online change, plus one per 30 s; meanwhile every
        # meter published its state several times a second.
        changes = len([m for m in rec.messages if m.topic.endswith("/availability")
                       and m.topic != "series4000/bridge/availability"])
        sent = len(rec.on(STATE))
        assert sent <= 1 + changes + int(elapsed // STATE_INTERVAL_S) + 1, (sent, changes)
        assert len(rec.on("series4000/m1/state")) > 3 * sent

    # The shed bus leaves the configuration: its entities leave the bridge's device.
    cfg = bridge_config(broker.port, buses[:1], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        def without_shed(r: Any) -> dict[str, Any] | None:
            for m in reversed(r.on(DISCOVERY)):
                comps = json.loads(m.payload)["components"]
                if comps.get("bus_shed_requests") == {"platform": "sensor"}:
                    return dict(comps)
            return None
        comps = await rec.wait_for(without_shed, 15, "removal markers for the shed bus")
        assert comps["bus_shed_line_use"] == {"platform": "sensor"}
        assert "state_topic" in comps["bus_panel_requests"]
        # The broker still holds the last state of the earlier run; the new one replaces it.
        await rec.wait_for(lambda r: (m := r.last(STATE)) and set(m.json()["buses"])
                           == {"panel"}, 15, "a state without the shed bus")
