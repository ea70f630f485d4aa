"""The simulator behaves like the meter: consistent physics, accumulators, QNAN by wiring,
validated set-up writes and working commands (a fake clock drives time)."""

from __future__ import annotations

import cmath
import math

import pytest

from bridge.meters.series4000 import points as s4k
from bridge.model import codec
from bridge.model.exception_codes import ILLEGAL_ADDRESS, ILLEGAL_VALUE
from bridge.sim.model import SimulatedMeter


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def meter(system_type: int = 40, **kwargs: object) -> tuple[SimulatedMeter, Clock]:
    clock = Clock()
    return SimulatedMeter(1, system_type, clock=clock, **kwargs), clock  # type: ignore[arg-type]


@pytest.mark.parametrize("system_type", [10, 11, 12, 31, 40])
def test_power_triangle_and_totals(system_type: int) -> None:
    m, _ = meter(system_type, per_phase_without_neutral=True)
    v = m.values
    phases = s4k.SYSTEM_TYPES[system_type].ct_phases
    for p in phases:
        s, pw, q = v[f"apparent_power_{p}_va"], v[f"power_{p}_w"], v[f"reactive_power_{p}_var"]
        assert s == pytest.approx(math.hypot(pw, q), rel=1e-9)
        assert v[f"power_factor_{p}"] == pytest.approx(pw / s, rel=1e-9)
    assert v["power_w"] == pytest.approx(sum(v[f"power_{p}_w"] for p in phases), rel=1e-9)
    assert v["apparent_power_va"] == pytest.approx(
        sum(v[f"apparent_power_{p}_va"] for p in phases), rel=1e-9)
    assert v["power_factor"] == pytest.approx(v["power_w"] / v["apparent_power_va"], rel=1e-9)
    assert v["current_a"] == pytest.approx(
        sum(v[f"current_{p}_a"] for p in phases) / len(phases), rel=1e-9)


def test_wye_line_to_line_from_phasors() -> None:
    m, _ = meter(40, frozen=True)
    v = m.values
    an = cmath.rect(v["voltage_an_v"], 0)
    bn = cmath.rect(v["voltage_bn_v"], math.radians(-120))
    assert v["voltage_ab_v"] == pytest.approx(abs(an - bn), rel=1e-9)
    assert v["voltage_ab_v"] == pytest.approx(math.sqrt(3) * 230, rel=1e-6)
    assert v["voltage_ll_v"] == pytest.approx(
        (v["voltage_ab_v"] + v["voltage_bc_v"] + v["voltage_ca_v"]) / 3, rel=1e-9)


def test_split_phase_voltages() -> None:
    m, _ = meter(12, frozen=True)
    assert m.values["voltage_ab_v"] == pytest.approx(240.0)
    assert m.values["voltage_ln_v"] == pytest.approx(120.0)
    assert m.values["voltage_cn_v"] is None and m.values["current_c_a"] is None


@pytest.mark.parametrize(("system_type", "qnan"), [
    (10, ["voltage_bn_v", "voltage_ab_v", "current_b_a", "power_b_w", "voltage_ll_v"]),
    (11, ["voltage_an_v", "voltage_ln_v", "current_b_a", "power_a_w"]),
    (31, ["voltage_an_v", "voltage_ln_v", "power_a_w", "energy_c_kwh"]),
])
def test_invalid_quantities_read_qnan_on_the_wire(system_type: int, qnan: list[str]) -> None:
    m, _ = meter(system_type)
    image = m.registers()
    for row in s4k.FLOAT_BLOCK:
        if row.key in qnan:
            assert (image[row.reg], image[row.reg + 1]) == codec.QNAN_FLOAT_WORDS, row.key


def test_energy_grows_with_power_and_pulses_follow_the_weight() -> None:
    m, clock = meter(40)
    m.setup.pulse_wh = 10
    before, expected_wh = m.energy_kwh, 0.0
    for _ in range(3600):  # an hour of one-second steps with a wandering load
        expected_wh += m.values["power_w"]  # x 1 s / 3600 s/h, summed below
        clock.t += 1.0
        m.tick()
    expected_wh /= 3600.0
    assert (m.energy_kwh - before) * 1000 == pytest.approx(expected_wh, rel=1e-9)
    assert m.pulse_count == int(expected_wh // 10)
    assert m.values["pulse_count"] == m.pulse_count


def test_load_moves_a_little_every_second() -> None:
    m, clock = meter(40)
    first = m.values["power_w"]
    clock.t += 1.0
    m.tick()
    assert m.values["power_w"] != first
    assert abs(m.values["power_w"] - first) / first < 0.02


def test_system_type_write_changes_what_is_valid() -> None:
    m, _ = meter(40)
    assert m.write(130, [10]) is None
    image = m.registers()
    assert image[130] == 10
    assert (image[295], image[296]) == codec.QNAN_FLOAT_WORDS  # voltage BN now QNAN


@pytest.mark.parametrize(("reg", "value", "code"), [
    (130, 41, ILLEGAL_VALUE), (131, 0, ILLEGAL_VALUE), (132, 2, ILLEGAL_VALUE),
    (134, 700, ILLEGAL_VALUE), (133, 0, ILLEGAL_VALUE), (133, 32001, ILLEGAL_VALUE),
    (142, 100, ILLEGAL_VALUE),
    (150, 5, ILLEGAL_VALUE), (129, 1234, ILLEGAL_VALUE),
    (135, 1, ILLEGAL_ADDRESS), (3, 1, ILLEGAL_ADDRESS), (257, 1, ILLEGAL_ADDRESS),
    (7001, 1, ILLEGAL_ADDRESS), (200, 1, ILLEGAL_ADDRESS),
])
def test_writes_are_validated_like_the_meter(reg: int, value: int, code: int) -> None:
    m, _ = meter(40)
    assert m.write(reg, [value]) == code
    assert m.setup == SimulatedMeter(1, 40).setup  # nothing changed


def test_pulse_weight_too_small_is_ignored_silently() -> None:
    m, _ = meter(40)
    m.setup.ct_primary_a = 5000  # maximum power 3.4 MW: 10 Wh per pulse cannot follow
    assert m.write(144, [10]) is None
    assert m.setup.pulse_wh == 1000 and m.ignored_writes == 1


def test_commands_act() -> None:
    m, clock = meter(40, frozen=True)
    m.pulse_count = 50
    assert m.write(129, [30078]) is None
    assert m.energy_kwh == 0 and m.energy_resets == 1 and m.registers()[147] == 1
    assert m.write(129, [16498]) is None and m.pulse_count == 0
    clock.t += 60
    m.tick()
    assert m.write(129, [21211]) is None and len(m._sub_done) == 1
    assert m.write(129, [21212]) is None
    assert m.ignored_writes == 1  # the second demand command within 10 s is ignored
    clock.t += 11
    assert m.write(129, [21212]) is None
    assert m.max_demand == pytest.approx(m.present_demand())


def test_phase_loss_sets_the_alarm_bits() -> None:
    m, _ = meter(40)
    assert m.alarm_bitmap() & s4k.PHASE_LOSS_MASK == 0
    m.lose_phase("c")
    assert m.alarm_bitmap() & s4k.PHASE_LOSS_MASK == 1 << 10
    assert m.values["voltage_cn_v"] == 0.0 and m.values["current_c_a"] == 0.0


@pytest.mark.parametrize("system_type", [10, 11, 12, 31, 40])
def test_phase_energies_add_up_to_the_total(system_type: int) -> None:
    m, clock = meter(system_type, per_phase_without_neutral=True)
    for _ in range(3):
        clock.t += 600
        m.tick()
        phases = s4k.SYSTEM_TYPES[system_type].ct_phases
        total = sum(m.values[f"energy_{p}_kwh"] or 0.0 for p in phases)
        assert total == pytest.approx(m.values["energy_kwh"], rel=1e-9)
    if system_type == 10:
        assert m.values["energy_a_kwh"] == pytest.approx(m.values["energy_kwh"], rel=1e-9)


def test_maximum_demand_is_never_below_the_present_demand() -> None:
    m, clock = meter(40)
    assert m.setup.demand_subinterval_s == 900
    for _ in range(40):  # within the first sub-interval, then across several
        clock.t += 60
        m.tick()
        for kind in ("power_w", "reactive_power_var", "apparent_power_va"):
            present = m.values[f"demand_{kind}"]
            assert present is not None and present > 0
            assert m.values[f"max_demand_{kind}"] >= present  # type: ignore[operator]
