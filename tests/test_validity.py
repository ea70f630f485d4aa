"""Validity by system type, read planning, and sanitising (pure, table-driven)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import measurement_plan, valid_state_keys
from bridge.meters.series4000.validity import active_alarms, alarm_bits_for
from bridge.model.registers import MAX_READ_REGISTERS, Register, plan_reads
from bridge.model.values import Dropped, sanitize

ALWAYS = {
    "energy_kwh", "reactive_energy_kvarh", "apparent_energy_kvah", "power_w",
    "reactive_power_var", "apparent_power_va", "power_factor", "frequency_hz", "current_a",
    "demand_power_w", "demand_reactive_power_var", "demand_apparent_power_va",
    "max_demand_power_w", "max_demand_reactive_power_var", "max_demand_apparent_power_va",
    "pulse_count", "current_a_a",
}


def per_phase(*phases: str) -> set[str]:
    out = set()
    for p in phases:
        out |= {f"power_{p}_w", f"reactive_power_{p}_var", f"apparent_power_{p}_va",
                f"power_factor_{p}", f"energy_{p}_kwh"}
    return out


# Hand-written from the quick install guide's system-type table.
EXPECTED = {
    10: ALWAYS | {"voltage_ln_v", "voltage_an_v"} | per_phase("a"),
    11: ALWAYS | {"voltage_ll_v", "voltage_ab_v"},
    12: ALWAYS | {"voltage_ll_v", "voltage_ln_v", "voltage_ab_v", "voltage_an_v",
                  "voltage_bn_v", "current_b_a"} | per_phase("a", "b"),
    31: ALWAYS | {"voltage_ll_v", "voltage_ab_v", "voltage_bc_v", "voltage_ca_v",
                  "current_b_a", "current_c_a"},
    40: ALWAYS | {"voltage_ll_v", "voltage_ln_v", "voltage_ab_v", "voltage_bc_v",
                  "voltage_ca_v", "voltage_an_v", "voltage_bn_v", "voltage_cn_v",
                  "current_b_a", "current_c_a"} | per_phase("a", "b", "c"),
}


@pytest.mark.parametrize("system_type", sorted(EXPECTED))
def test_valid_keys_by_system_type(system_type: int) -> None:
    assert valid_state_keys(system_type) == EXPECTED[system_type]


@pytest.mark.parametrize(("system_type", "reported", "added"), [
    (31, {"power_a_w", "power_b_w", "power_c_w"}, {"power_a_w", "power_b_w", "power_c_w"}),
    (11, {"power_a_w", "power_b_w"}, {"power_a_w"}),  # B is not uncertain in type 11: no CT
    (40, {"power_a_w"}, set()),  # already valid
    (10, {"power_b_w"}, set()),  # never valid in type 10, whatever the meter says
])
def test_uncertain_keys_become_valid_only_when_reported(system_type: int, reported: set[str],
                                                        added: set[str]) -> None:
    assert valid_state_keys(system_type, reported) == EXPECTED[system_type] | added


@pytest.mark.parametrize(("system_type", "bitmap", "expected"), [
    (40, 0, []),
    (40, 1 << 9, ["phase_loss_b"]),
    (10, 1 << 9, []),  # phase B is not wired in type 10
    (10, 1 << 8 | 1 << 11, ["phase_loss_a", "low_power_factor_a"]),
    (12, 1 << 10 | 1 << 4, ["current_out_of_range_b"]),
    (11, 1 << 1 | 1 << 4, ["voltage_out_of_range_b"]),  # L-L on A-B, one CT on A
    (31, 0xFFFF, [b.key for b in s4k.ALARM_BITS]),
    (40, 1 << 7, []),  # reserved bit
    (40, 1 << 14 | 1 << 15, ["pulse_overrun", "pulse_weight_too_small"]),
])
def test_alarms(system_type: int, bitmap: int, expected: list[str]) -> None:
    assert list(active_alarms(bitmap, system_type)) == expected


def test_alarm_bits_for_unknown_type_are_empty() -> None:
    assert alarm_bits_for(99) == ()


def test_the_float_block_is_one_request() -> None:
    plan = measurement_plan(40)
    assert [(b.start, b.count) for b in plan] == [(257, 90)]
    assert all(b.count <= MAX_READ_REGISTERS for b in plan)


def test_plan_for_type_10_skips_only_small_gaps() -> None:
    plan = measurement_plan(10)
    assert all(b.count <= MAX_READ_REGISTERS for b in plan)
    read = {r.key for b in plan for r in b.registers}
    assert read == EXPECTED[10]


@given(st.sets(st.sampled_from(s4k.ALL_REGISTERS), min_size=1), st.integers(0, 40),
       st.integers(2, 125))
def test_plan_reads_covers_each_register_once_within_limits(rows: set[Register],
                                                            gap: int, limit: int) -> None:
    blocks = plan_reads(rows, max_gap=gap, max_count=limit)
    seen = [r for b in blocks for r in b.registers]
    assert sorted(seen, key=lambda r: r.reg) == sorted(rows, key=lambda r: r.reg)
    for b in blocks:
        assert b.count <= limit
        for r in b.registers:
            assert b.start <= r.reg and r.last_reg <= b.end
    for a, b in itertools.pairwise(blocks):
        assert a.end < b.start


def test_sanitize_keeps_valid_numbers_and_guards_totals() -> None:
    values = {"power_w": 5.0, "voltage_bn_v": 230.0, "energy_kwh": 99.0,
              "frequency_hz": None, "current_a": float("nan")}
    valid = frozenset({"power_w", "energy_kwh", "frequency_hz", "current_a"})
    clean, floors, dropped = sanitize(values, valid, {"energy_kwh": 100.0})
    assert clean == {"power_w": 5.0}
    assert floors == {"energy_kwh": 100.0}
    assert dropped == [Dropped("energy_kwh", 99.0, 100.0, "lower than the last published total")]


def test_sanitize_accepts_a_known_reset() -> None:
    clean, floors, dropped = sanitize({"energy_kwh": 0.0}, frozenset({"energy_kwh"}),
                                      {"energy_kwh": 100.0}, resets={"energy_kwh"})
    assert clean == {"energy_kwh": 0.0} and floors == {"energy_kwh": 0.0} and not dropped


def test_sanitize_raises_the_floor() -> None:
    clean, floors, _ = sanitize({"energy_kwh": 101.5}, frozenset({"energy_kwh"}),
                                {"energy_kwh": 100.0})
    assert clean == {"energy_kwh": 101.5} and floors["energy_kwh"] == 101.5
