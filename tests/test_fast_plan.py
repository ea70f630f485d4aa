"""The fast tier's read plan: integer total power where its scale is fine enough, adjacent keys in
one request, and the same plan in the bus budget; the simulator's integer and float agree."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.core.budget import REFERENCE_TIMING, LineTiming, meter_loads
from bridge.meters.series4000 import PROFILE
from bridge.meters.series4000 import points as s4k
from bridge.model import codec
from bridge.model.fast_plan import coarsest_scales, fast_plan, integer_suffices, worthwhile_gap
from bridge.model.quantities import published_resolution
from bridge.model.read_limits import NOTHING_REFUSED, ReadLimits
from bridge.sim.broker import Broker
from bridge.sim.model import SimulatedMeter
from bridge.sim.setup import Setup
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_poller import Clock, make_poller, meter, run_until

FULL = PROFILE.measurement_plan(40, include_uncertain=True)
W = s4k.SCALE_W
AT_115200 = LineTiming(11 / 115200, 1.75e-3)


def plan_of(keys: list[str], scale_w: int | None, limits: ReadLimits = NOTHING_REFUSED,
            timing: LineTiming = REFERENCE_TIMING) -> list[tuple[int, int]]:
    scales = None if scale_w is None else {W: scale_w}
    blocks = fast_plan(FULL, keys, PROFILE.fast_integer_rows, scales, limits, timing.read_s)
    return [(b.start, b.count) for b in blocks]


@pytest.mark.parametrize(("keys", "scale_w", "expected"), [
    # Power alone: the integer when it steps by 0.1 W (the published resolution), else the float.
    (["power_w"], -4, [(3, 1)]),
    (["power_w"], -3, [(261, 2)]),
    (["power_w"], -2, [(261, 2)]),
    (["power_w"], 0, [(261, 2)]),
    (["power_w"], None, [(261, 2)]),  # set-up not read yet
    # With per-phase power (a read of its own either way) the integer saves a register.
    (["power_w", "power_a_w", "power_b_w", "power_c_w"], -4, [(3, 1), (275, 6)]),
    (["power_w", "power_a_w", "power_b_w", "power_c_w"], -3, [(261, 2), (275, 6)]),
    # Adjacent to the float of total power: one read beats the integer plus a second read.
    (["power_w", "reactive_power_var", "apparent_power_va"], -4, [(261, 6)]),
    # Adjacent keys share a request; a gap wider than a request's overhead splits them.
    (["power_a_w", "power_b_w", "power_c_w"], -4, [(275, 6)]),
    (["power_w", "current_a_a"], -3, [(261, 2), (299, 2)]),
    # Ten unused registers (263-272) cost less than a second request.
    (["power_w", "current_a", "power_a_w"], -3, [(261, 16)]),
    ([], -4, []),
    (["max_power_w"], -4, []),  # not a measurement: read with the set-up
])
def test_the_fast_plan_reads_the_fewest_bytes(keys: list[str], scale_w: int | None,
                                              expected: list[tuple[int, int]]) -> None:
    assert plan_of(keys, scale_w) == expected


def test_a_meter_without_the_integer_register_gets_the_float() -> None:
    lacking = ReadLimits(missing=frozenset({3}))
    assert plan_of(["power_w"], -4, lacking) == [(261, 2)]


def test_a_faster_line_spans_wider_gaps() -> None:
    keys = ["power_a_w", "power_b_w", "power_c_w", "current_a_a", "current_b_a", "current_c_a"]
    assert plan_of(keys, -3) == [(275, 6), (299, 6)]
    # At 115200 the silences dominate a request: the 18 registers between are cheaper.
    assert plan_of(keys, -3, timing=AT_115200) == [(275, 30)]


@pytest.mark.parametrize(("timing", "gap"), [(REFERENCE_TIMING, 11), (AT_115200, 30)])
def test_the_worthwhile_gap_follows_the_line(timing: LineTiming, gap: int) -> None:
    assert worthwhile_gap(timing.read_s) == gap
    # One read over the gap costs no more than two reads; one register more would.
    assert timing.read_s(2 + gap + 2) <= 2 * timing.read_s(2)
    assert timing.read_s(2 + gap + 3) > 2 * timing.read_s(2)


@pytest.mark.parametrize(("system_type", "voltage_v", "ct_a", "integer"), [
    (10, 120, 5, True),     # 0.6 kW full scale: register 140 = -4, 0.1 W steps
    (10, 120, 20, True),    # 2.4 kW
    (11, 240, 5, True),     # 1.2 kW
    (12, 240, 100, False),  # 24 kW: -3, 1 W steps are coarser than the published 0.1 W
    (40, 208, 50, False),   # 18 kW
    (40, 600, 100, False),  # 104 kW: -2, 10 W steps
    (31, 480, 400, False),  # 333 kW: -1
])
def test_the_integer_is_chosen_per_meter_set_up(system_type: int, voltage_v: int, ct_a: int,
                                                integer: bool) -> None:
    scales = Setup(system_type=system_type, system_voltage_v=voltage_v,
                   ct_primary_a=ct_a).scales()
    assert integer_suffices(s4k.BY_REG[3], scales) is integer
    assert plan_of(["power_w"], scales[W]) == ([(3, 1)] if integer else [(261, 2)])


def test_the_coarsest_scale_that_allows_the_integer() -> None:
    assert coarsest_scales(PROFILE.fast_integer_rows) == {W: -4}
    assert integer_suffices(s4k.BY_REG[3], {W: -4})
    assert not integer_suffices(s4k.BY_REG[3], {W: -3})


def test_the_budget_prices_the_plan_the_bridge_reads() -> None:
    config = parse_config({"buses": [{"name": "b", "transport": "rtu", "device": "/dev/null",
                                      "meters": [{"name": "m", "unit": 1, "fast_interval": 1,
                                                  "fast_keys": ["power_w"]}]}]}, env={})
    bus = config.buses[0]
    floats = meter_loads(bus, FULL, PROFILE.config_block)
    assert floats[0].fast_blocks == (2,)
    integers = meter_loads(bus, FULL, PROFILE.config_block, PROFILE.fast_integer_rows, {W: -4})
    assert integers[0].fast_blocks == (1,)
    coarse = meter_loads(bus, FULL, PROFILE.config_block, PROFILE.fast_integer_rows, {W: -3})
    assert coarse[0].fast_blocks == (2,)


SET_UPS = [(st, v, ct) for st in (10, 11, 12, 31, 40) for v, ct in ((120, 5), (240, 100),
                                                                   (480, 800))]


@pytest.mark.parametrize(("system_type", "voltage_v", "ct_a"), SET_UPS)
def test_the_simulator_serves_the_integer_power_consistently_with_the_float(
        system_type: int, voltage_v: int, ct_a: int) -> None:
    sim = SimulatedMeter(1, system_type, frozen=True, clock=Clock())
    _fit(sim, voltage_v, ct_a)
    image = sim.registers()
    scales = PROFILE.decode_setup([image[r] for r in range(129, 155)]).scales
    assert scales == sim.setup.scales()
    as_integer = codec.decode(s4k.BY_REG[3], [image[3]], scales)
    as_float = codec.decode(s4k.BY_REG[261], [image[261], image[262]], scales)
    assert as_integer is not None and as_float is not None
    step = 10.0 ** (3 + scales[W])
    assert abs(as_integer - as_float) <= step / 2 + 1e-6 * abs(as_float)


def _fit(sim: SimulatedMeter, voltage_v: int, ct_a: int) -> None:
    """A set-up with a load inside the CTs' range (the integer saturates above it)."""
    sim.setup.system_voltage_v, sim.setup.ct_primary_a = voltage_v, ct_a
    sim.load.current_a = [0.7 * ct_a, 0.5 * ct_a, 0.3 * ct_a]
    sim.tick(sim.clock() + 0.001)  # the frozen meter's values follow the new load


@pytest.mark.parametrize(("voltage_v", "ct_a", "fast_read"), [
    (208, 5, (3, 1)),       # the integer
    (600, 100, (261, 2)),   # the float
])
async def test_the_poller_publishes_the_same_power_from_either_read(
        voltage_v: int, ct_a: int, fast_read: tuple[int, int]) -> None:
    clock = Clock()
    poller, client, _, sent = make_poller(
        [meter("m", 1, poll_interval=30, fast_interval=1, fast_keys=["power_w"])], clock=clock)
    _fit(client.meters[1], voltage_v, ct_a)
    await run_until(poller, clock, clock.now + 0.1)  # the first full read: the float
    rt = poller.meters["m"]
    from_float = rt.values["power_w"]
    await run_until(poller, clock, clock.now + 3.0)
    fast = [(e[2], e[3]) for e in client.log if e[0] == "read" and e[3] < 10]
    assert fast and set(fast) == {fast_read}
    from_fast = rt.values["power_w"]
    step = max(10.0 ** (3 + rt.setup.scales[W]) if rt.setup else 0.0,
               published_resolution("power_w"))
    assert abs(from_fast - from_float) <= step
    assert sent  # published


async def test_the_service_reads_power_as_the_integer_from_the_simulator_over_tcp(
        broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    """Two frozen meters on one Modbus TCP bus: a small CT (register 140 = -4: the integer) and
    the factory set-up (-2: the float). Both publish the power their float register holds."""
    sim = sim_factory([1, 2], 40, frozen=True)
    _fit(sim.meters[1], 208, 5)
    _fit(sim.meters[2], 600, 100)
    _, port = await sim.serve_tcp()
    meters = [{"name": name, "unit": unit, "poll_interval": 30, "fast_interval": 0.2,
               "fast_keys": ["power_w"]} for name, unit in (("small", 1), ("large", 2))]
    config = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path,
                           publish={"min_interval_s": 0.1, "deadband": {"power": 0}})
    async with recorder(broker.port, ("series4000/+/state",)) as rec, running(config) as svc:
        poller = svc.pollers[0]

        def fast_reads_done(_: Any) -> bool:
            return all(rt.polls >= 6 for rt in poller.meters.values())

        await rec.wait_for(fast_reads_done, 20, "six reads of each meter")
        small, large = poller.meters["small"], poller.meters["large"]
        assert [(b.start, b.count) for b in small.fast_blocks] == [(3, 1)]
        assert [(b.start, b.count) for b in large.fast_blocks] == [(261, 2)]
        # Both were read over the wire: the words of each fast block are cached.
        assert 3 in small.words and 261 in large.words
        states = {name: [m.json()["power_w"] for m in rec.on(f"series4000/{name}/state")]
                  for name in ("small", "large")}
        last_read = {"small": small.values["power_w"], "large": large.values["power_w"]}
    for name, unit in (("small", 1), ("large", 2)):
        image = sim.meters[unit].registers()
        as_float = codec.decode(s4k.BY_REG[261], [image[261], image[262]], {})
        assert as_float is not None
        # The first state comes from the full (float) read; a frozen meter's fast reads give the
        # same power (with no deadband, any other value would have been published too).
        assert states[name]
        for value in (*states[name], last_read[name]):
            assert abs(value - as_float) <= published_resolution("power_w")
