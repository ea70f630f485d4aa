"""Invariants of the Series 4000-K profile and the quantity vocabulary."""

from __future__ import annotations

import math

import pytest

from bridge.meters.series4000 import points as s4k
from bridge.model.quantities import BY_KEY, QUANTITIES, StateClass
from bridge.model.registers import Access, DataType, Register, overlapping

# The units Home Assistant 2025.4 accepts for each device class we use
# (homeassistant.components.sensor.const.DEVICE_CLASS_UNITS; checked against a real install by
# tests/test_homeassistant.py).
HA_UNITS = {
    "energy": {"Wh", "kWh", "MWh", "GWh", "TWh", "MJ", "GJ", "cal", "kcal", "Mcal", "Gcal"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "reactive_power": {"var"},
    "apparent_power": {"VA"},
    "power_factor": {"%", None},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
}

# Every documented point of the E50 map, by register number (hand-written from the point map).
EXPECTED_INTEGER = [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                    23, 24, 25, 26, 27, 29, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
                    45, 47, 49, 51]
EXPECTED_FLOAT = list(range(257, 346, 2))
EXPECTED_CONFIG = list(range(129, 155))


def test_every_point_of_the_map_is_a_row() -> None:
    assert [r.reg for r in s4k.INTEGER_BLOCK] == EXPECTED_INTEGER
    assert [r.reg for r in s4k.FLOAT_BLOCK] == EXPECTED_FLOAT
    assert [r.reg for r in s4k.CONFIG_BLOCK] == EXPECTED_CONFIG
    assert s4k.FIRMWARE.reg == 7001
    assert s4k.INTEGER_BLOCK[-1].last_reg == 52
    assert s4k.FLOAT_BLOCK[-1].last_reg == 346


def test_no_two_rows_claim_a_register() -> None:
    assert overlapping(s4k.ALL_REGISTERS) == []


def test_ids_are_unique() -> None:
    ids = [r.id for r in s4k.ALL_REGISTERS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("block", [s4k.INTEGER_BLOCK, s4k.FLOAT_BLOCK, s4k.CONFIG_BLOCK])
def test_state_keys_unique_within_a_block(block: tuple[Register, ...]) -> None:
    keys = [r.key for r in block if r.key]
    assert len(keys) == len(set(keys))


def test_every_row_key_is_in_the_vocabulary_or_a_setting() -> None:
    settings = {s.key for s in s4k.SETTINGS} | {"alarms"}
    for row in s4k.ALL_REGISTERS:
        if row.key:
            assert row.key in BY_KEY or row.key in settings, row


def test_float_block_is_float_and_integer_block_scaled() -> None:
    assert all(r.dtype is DataType.FLOAT32 and r.scale_reg is None for r in s4k.FLOAT_BLOCK)
    for r in s4k.INTEGER_BLOCK:
        if r.key and r.key != "pulse_count":
            assert r.scale_reg in (138, 139, 140, 141), r


@pytest.mark.parametrize(("reg", "scale"), [
    (1, 141), (3, 140), (4, 140), (5, 140), (7, 139), (8, 139), (9, 138), (10, 140),
    (16, 139), (21, 139), (22, 138), (24, 138), (27, 141), (29, 141), (31, 140), (36, 140),
    (37, 140), (42, 140), (47, 141), (51, 141), (135, 140),
])
def test_scale_register_of_each_integer_point(reg: int, scale: int) -> None:
    # From the point map's notes: 138 currents, 139 voltages, 140 powers, 141 energies.
    assert s4k.BY_REG[reg].scale_reg == scale


def test_float_mirror_rule() -> None:
    # Integer 3..26 -> float 257 + 2(n - 1); accumulators map one pair to one float.
    for n in range(3, 27):
        i, f = s4k.BY_REG[n], s4k.BY_REG[257 + 2 * (n - 1)]
        assert i.key == f.key or i.key is None or f.key is None, (n, i.key, f.key)
    pairs = {27: 309, 29: 311, 43: 337, 45: 339, 47: 341, 49: 343, 51: 345}
    for n in range(31, 43):
        pairs[n] = 313 + 2 * (n - 31)
    for i_reg, f_reg in pairs.items():
        i, f = s4k.BY_REG[i_reg], s4k.BY_REG[f_reg]
        assert i.key == f.key, (i_reg, f_reg)
        assert i.valid_types == f.valid_types and i.uncertain_types == f.uncertain_types


def test_factors_are_powers_of_ten() -> None:
    for r in s4k.ALL_REGISTERS:
        exp = math.log10(r.factor)
        assert exp == round(exp), r


def test_units_fit_home_assistant_device_classes() -> None:
    for q in QUANTITIES:
        if q.device_class:
            assert q.unit in HA_UNITS[q.device_class], q
        if q.state_class is StateClass.TOTAL_INCREASING:
            # An accumulator never drops; a count may start again (Home Assistant takes a
            # drop of a total_increasing value as a reset).
            assert q.monotonic or q.integer, q


def test_every_writable_register_has_a_range_or_options() -> None:
    writable = {r.reg for r in s4k.CONFIG_BLOCK if r.access is Access.RW}
    assert writable == {s.reg for s in s4k.SETTINGS}
    for s in s4k.SETTINGS:
        if s.kind == "select":
            assert s.options, s
        else:
            assert s.minimum < s.maximum and s.step > 0, s
    assert s4k.BY_REG[129].access is Access.W


def test_commands_have_the_documented_values() -> None:
    assert {c.key: c.value for c in s4k.COMMANDS} == {
        "reset_energy": 30078, "new_demand_interval": 21211, "reset_max_demand": 21212,
        "reset_pulse_counters": 16498}


def test_pulse_output_formula() -> None:
    # From the point map: 1000 Wh and 500 ms -> 3.6 MW; 10 Wh and 500 ms -> 36 kW.
    assert s4k.pulse_max_power_w(1000, 500) == 3_600_000
    assert s4k.pulse_max_power_w(10, 500) == 36_000


def test_firmware_label() -> None:
    assert s4k.firmware_label(12345) == "V12.345"
    assert s4k.firmware_label(1051) == "V1.051"
