"""The whole bridge behind a noisy bus: 5 % of the frames damaged, no wrong value ever published.

Frozen simulated meters (three wirings, different loads) sit behind the fault-injection proxy;
the bridge reads them continuously over RTU over TCP. Every decoded read is compared with the
simulator's truth (a listener on the bus task sees each one) and so is every state message that
reaches the broker. A frozen meter makes this strict: the values never change, so any wrong
value would also be a change, and changes are published at once.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest

from bridge.core.runtime import MeterRuntime
from bridge.model.quantities import published_decimals, quantity
from bridge.sim.broker import Broker
from tests.faults.proxy import Fault, FaultPlan, fault_proxy
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus, total_polls

UNITS = [1, 2, 3]
SYSTEM_TYPES = [40, 12, 10]
RATE = 0.05  # of the frames, each way
CLEAN_S = 4.0
FAULTY_S = 14.0


def same(key: str, published: float, truth: float) -> bool:
    """Equal to the published resolution (half a step of the last published digit)."""
    step = 10.0 ** -published_decimals(quantity(key))
    return math.isclose(published, truth, rel_tol=1e-6, abs_tol=0.5 * step + 1e-9)


async def test_five_percent_bad_frames_never_publish_a_wrong_value(
        broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory(UNITS, SYSTEM_TYPES, frozen=True)
    upstream = await sim.serve_rtu_over_tcp()
    truth: dict[int, dict[str, float]] = {}
    plan = FaultPlan.uniform(RATE, requests=True, delay_s=0.15)  # beyond the timeout
    wrong: list[str] = []
    compared = {"decoded": 0, "published": 0}
    unit_of = {f"m{u}": u for u in UNITS}

    def check_read(rt: MeterRuntime, kind: str) -> None:
        unit = rt.cfg.unit
        if not truth:
            return
        assert rt.setup is not None
        if rt.setup.system_type != SYSTEM_TYPES[unit - 1]:
            wrong.append(f"{rt.name}: system type {rt.setup.system_type}")
        if kind != "full":
            return
        for key, value in rt.values.items():
            compared["decoded"] += 1
            if not same(key, float(value), truth[unit][key]):
                wrong.append(f"{rt.name}.{key} decoded {value}, truth {truth[unit][key]}")

    async with fault_proxy(upstream, seed=8) as proxy:
        meters = [{"name": f"m{u}", "unit": u, "poll_interval": 0} for u in UNITS]
        bus = tcp_bus(proxy.port, meters, transport="rtu_over_tcp", offline_after=3,
                      retries=2, timeout=0.1)
        cfg = bridge_config(broker.port, [bus], tmp_path,
                            publish={"min_interval_s": 0, "heartbeat_s": 1})
        async with recorder(broker.port) as rec, running(cfg) as service:
            poller = service.pollers[0]
            poller.listeners.append(check_read)
            for u in UNITS:
                await rec.wait_message(f"series4000/m{u}/state")
            # Frozen from here on (demand is set by the simulator's first tick).
            truth.update({u: sim.meters[u].state() for u in UNITS})
            # Precondition: an answer from the wrong meter would be a wrong value.
            assert truth[1]["power_w"] != truth[2]["power_w"] != truth[3]["power_w"]
            seen_before = [m for m in rec.messages if m.topic.endswith("/availability")]
            rec.messages.clear()
            polls_at_start = total_polls(service)
            await asyncio.sleep(CLEAN_S)
            clean_polls = total_polls(service)
            clean_frames = proxy.frames["request"]
            proxy.plan = plan
            await asyncio.sleep(FAULTY_S)
            proxy.plan = FaultPlan()
            faulty_polls = total_polls(service) - clean_polls
            faulty_frames = proxy.frames["request"] - clean_frames
            errors = {rt.name: rt.errors for rt in poller.meters.values()}
            availability = [m.payload for m in seen_before + rec.messages
                            if m.topic.endswith("/availability")]

    # Every state message that reached the broker carries only true measurements.
    for msg in rec.messages:
        name = msg.topic.split("/")[1]
        if name not in unit_of or not msg.topic.endswith("/state"):
            continue
        unit = unit_of[name]
        for key, value in json.loads(msg.payload).items():
            if key in truth[unit]:
                compared["published"] += 1
                if not same(key, value, truth[unit][key]):
                    wrong.append(f"{name}.{key} published {value}, truth {truth[unit][key]}")
            elif key == "system_type" and value != SYSTEM_TYPES[unit - 1]:
                wrong.append(f"{name}.system_type published {value}")

    injected = sum(proxy.counts.values())
    print(f"\nbad frames: {injected} faults injected in {faulty_frames} requests "
          f"(and their answers); {compared['decoded']} decoded and {compared['published']} "
          f"published values compared; wrong: {len(wrong)}; read errors after retries: "
          f"{errors}; requests per poll clean {clean_frames / max(clean_polls, 1):.2f}, "
          f"with faults {faulty_frames / max(faulty_polls, 1):.2f}")
    # Cycle rate: what the retries should cost (a timeout per repeated request) against what
    # was measured.
    clean_poll_s = CLEAN_S / max(clean_polls - polls_at_start, 1)
    retry_cost_s = (faulty_frames - faulty_polls) * bus["timeout"] / max(faulty_polls, 1)
    print(f"cycle rate with faults / clean: {clean_poll_s * faulty_polls / FAULTY_S:.2f}; "
          f"expected from the retries' cost: {clean_poll_s / (clean_poll_s + retry_cost_s):.2f}")
    assert wrong == [], wrong[:10]
    assert injected >= 50 and len(proxy.counts) >= 6, proxy.counts
    assert compared["decoded"] >= 1000 and compared["published"] >= 300, compared
    # Retries hide the damage: the meters never went offline.
    assert availability and set(availability) == {"online"}, availability
    # The bridge repeats only what was damaged: a few more requests per poll, not many.
    per_poll_clean = clean_frames / clean_polls
    per_poll_faulty = faulty_frames / faulty_polls
    assert per_poll_faulty <= per_poll_clean * (1 + 4 * RATE) + 0.05, (per_poll_clean,
                                                                      per_poll_faulty)


@pytest.mark.parametrize("direction", ["requests", "responses"])
async def test_a_meter_behind_a_broken_link_goes_offline_with_no_values(
        direction: str, broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    """Every frame damaged: nothing but errors, so the meter is offline and no state is made
    up from a damaged answer."""
    sim = sim_factory([1], 40, frozen=True)
    upstream = await sim.serve_rtu_over_tcp()
    table = {Fault.BAD_CRC: 0.5, Fault.WRONG_UNIT: 0.5}
    plan = FaultPlan(requests=table) if direction == "requests" else FaultPlan(responses=table)
    async with fault_proxy(upstream, plan, seed=2) as proxy:
        bus = tcp_bus(proxy.port, [{"name": "m1", "unit": 1, "poll_interval": 0}],
                      transport="rtu_over_tcp", timeout=0.1)
        cfg = bridge_config(broker.port, [bus], tmp_path)
        async with recorder(broker.port) as rec, running(cfg) as service:
            msg = await rec.wait_message("series4000/m1/availability")
            await asyncio.sleep(1.0)
            rt = service.pollers[0].meters["m1"]
            assert rt.errors >= 2 and rt.polls == 0
    assert msg.payload == "offline"
    assert not rec.on("series4000/m1/state")
    assert sum(proxy.counts.values()) >= 2
