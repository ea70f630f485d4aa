"""Energy resets as real meters do them: counted at the next calculation cycle, and maybe
clearing the pulse counters too (30078 is documented for "all energy accumulators" only)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.config import MeterConfig
from bridge.core.runtime import MeterRuntime, apply_setup
from bridge.meters.series4000 import PROFILE
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import MeterSetup, decode_setup
from bridge.sim.broker import Broker
from bridge.sim.model import SimulatedMeter
from bridge.sim.quirks import Quirks
from tests.mqtt_helpers import Recorder, recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_commands_e2e import STATE, command, meter_cfg, start


def setup_with_resets(count: int) -> MeterSetup:
    meter = SimulatedMeter(1, 40)
    meter.energy_resets = count
    image = meter.registers()
    return decode_setup([image[r] for r in range(129, 155)])


@pytest.mark.parametrize(("before", "after", "released"), [
    (3, 3, set()),  # nothing counted: every accumulator keeps its floor
    (3, 4, {*s4k.COMMANDS_BY_KEY["reset_energy"].resets, "pulse_count"}),
    (3, 0, {*s4k.COMMANDS_BY_KEY["reset_energy"].resets, "pulse_count"}),  # count wrapped
])
def test_a_counted_reset_releases_every_accumulator_it_may_clear(
        before: int, after: int, released: set[str]) -> None:
    rt = MeterRuntime(cfg=MeterConfig(name="main", unit=1), node_id="main", profile=PROFILE)
    apply_setup(rt, setup_with_resets(before))
    apply_setup(rt, setup_with_resets(after))
    assert rt.resets == released


async def state_where(rec: Recorder, what: str, test: Any) -> dict[str, Any]:
    msg = await rec.wait_for(lambda r: next((m.json() for m in reversed(r.on(STATE))
                                            if test(m.json())), None), 10, what)
    state: dict[str, Any] = msg
    return state


async def test_reset_counted_at_the_next_cycle_clears_pulses_too(
        broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    meter = sim.meters[1]
    meter.quirks = Quirks(reset_delay_s=1.0, reset_clears_pulses=True)
    meter.pulse_count = 777
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg(allow_resets=True)])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        before = await start(rec)
        assert before["pulse_count"] == 777 and before["energy_reset_count"] == 0
        result = await command(rec, "reset_energy", "PRESS")
        # Register 147 counts the reset a cycle later; the bridge waited for it.
        assert result["ok"] and result["error"] is None, result
        assert meter.energy_resets == 1
        state = await state_where(rec, "energy and pulses at 0", lambda s: (
            s.get("energy_kwh") == 0.0 and s.get("pulse_count") == 0))
        assert state["energy_reset_count"] == 1


async def test_a_reset_the_meter_never_counts_is_reported(
        broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    sim.meters[1].quirks = Quirks(reset_delay_s=3600.0)  # acknowledged, never acted on
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg(allow_resets=True)])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await start(rec)
        result = await command(rec, "reset_energy", "PRESS", timeout=15)
        assert not result["ok"]
        assert result["error"] == ("the meter did not count a reset (register 147 unchanged "
                                   "after 3 s)")


async def test_a_front_panel_reset_releases_the_pulse_counter(
        broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    meter = sim.meters[1]
    meter.quirks = Quirks(reset_clears_pulses=True)
    meter.pulse_count = 500
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg(config_interval=1)])],
                        tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        before = await start(rec)
        assert before["pulse_count"] == 500
        meter.write(s4k.REG_COMMAND, [30078])  # as the front panel's reset would
        state = await state_where(rec, "the reset published", lambda s: (
            s.get("pulse_count") == 0 and s.get("energy_kwh") == 0.0))
        assert state["energy_reset_count"] == 1
