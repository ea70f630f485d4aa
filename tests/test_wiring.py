"""The wiring rules, table-driven: one row per rule and system type, with the readings that must
not trigger, and the hold that keeps a passing load change from raising or clearing a finding.

Readings are built by hand from a healthy installation of each system type (nominal voltages
from the system-voltage setting, 20 A at power factor 0.92 on every CT, 60 Hz), then changed
the way a fault changes them. Each row lists every finding it must give: a rule that fired on a
row that is not its own would show up as an extra finding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from bridge.meters.findings import (
    HOLD_READS,
    Finding,
    FindingHold,
    Severity,
    blocking,
    hold_step,
    persistent,
    state_keys,
)
from bridge.meters.profile import MeterSetup
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.wiring import check
from bridge.meters.series4000.wiring_basis import CODES, INFO_CODES, SEVERITIES, WiringReading
from bridge.sim.faults import FaultError, apply_fault, parse_fault
from bridge.sim.model import SimulatedMeter

SYSTEM_V = {10: 230, 11: 240, 12: 240, 31: 480, 40: 400}
CT_A = 100


def healthy(system_type: int) -> dict[str, float]:
    """The measured values of a healthy installation of ``system_type``."""
    system = s4k.SYSTEM_TYPES[system_type]
    v_sys = SYSTEM_V[system_type]
    v_ln = {10: v_sys, 12: v_sys / 2, 40: v_sys / math.sqrt(3)}.get(system_type)
    values: dict[str, float] = {"frequency_hz": 60.0}
    ll = {11: ("ab",), 12: ("ab",), 31: ("ab", "bc", "ca"), 40: ("ab", "bc", "ca")}
    for pair in ll.get(system_type, ()):
        values[f"voltage_{pair}_v"] = v_sys
    if v_ln is not None:
        for p in system.voltage_phases:
            values[f"voltage_{p}n_v"] = v_ln
    for p in system.ct_phases:
        values[f"current_{p}_a"] = 20.0
        if system.neutral:
            values[f"power_factor_{p}"] = 0.92
    return values


@dataclass(frozen=True)
class Row:
    id: str
    system_type: int
    expected: frozenset[tuple[str, str | None]]
    values: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    status: dict[str, float] = field(default_factory=dict)
    alarm_bits: tuple[int, ...] = ()
    #: Values scaled from the healthy ones: key -> factor.
    scale: dict[str, float] = field(default_factory=dict)


def reading_of(row: Row) -> WiringReading:
    values = healthy(row.system_type)
    for key, factor in row.scale.items():
        values[key] *= factor
    values.update(row.values)
    settings = {"system_type": row.system_type, "system_voltage_v": SYSTEM_V[row.system_type],
                "ct_primary_a": CT_A, "phase_loss_imbalance_pct": 25, "pulse_wh": 1000,
                **row.settings}
    factor = math.sqrt(3) if row.system_type in (31, 40) else 1.0
    status = {"max_power_w": factor * settings["system_voltage_v"] * settings["ct_primary_a"],
              **row.status}
    bitmap = sum(1 << b for b in row.alarm_bits)
    return WiringReading(MeterSetup(row.system_type, {}, settings, status, bitmap), values)


def _f(*pairs: tuple[str, str | None]) -> frozenset[tuple[str, str | None]]:
    return frozenset(pairs)


NONE: frozenset[tuple[str, str | None]] = frozenset()
ALL = (10, 11, 12, 31, 40)
FIRST_V = {10: "an", 11: "ab", 12: "an", 31: "ab", 40: "an"}
ROWS: list[Row] = [
    *[Row(f"clean-{t}", t, NONE) for t in ALL],
    # voltage_missing
    Row("voltage_missing-10", 10, _f(("voltage_missing", "an")), {"voltage_an_v": 3.0}),
    Row("voltage_missing-11", 11, _f(("voltage_missing", "ab")), {"voltage_ab_v": 0.0}),
    Row("voltage_missing-12", 12, _f(("voltage_missing", "bn")), {"voltage_bn_v": 0.0}),
    Row("voltage_missing-31", 31, _f(("voltage_missing", "bc"), ("voltage_missing", "ca")),
        scale={"voltage_bc_v": 0.55, "voltage_ca_v": 0.55}),
    Row("voltage_missing-40", 40, _f(("voltage_missing", "cn")),
        {"voltage_cn_v": 0.0, "voltage_bc_v": 231.0, "voltage_ca_v": 231.0}),
    Row("voltage_missing-40-just-above", 40,
        _f(("voltage_out_of_range", "cn"), ("voltage_imbalance", None)),
        scale={"voltage_cn_v": 0.21}),
    # system_type_mismatch
    Row("mismatch-40-to-12", 40, _f(("voltage_missing", "cn"), ("system_type_mismatch", None)),
        {"voltage_cn_v": 0.0, "current_c_a": 0.0, "power_factor_c": 1.0,
         "voltage_bc_v": 231.0, "voltage_ca_v": 231.0}),
    Row("mismatch-40-to-10", 40, _f(("voltage_missing", "bn"), ("voltage_missing", "cn"),
                                    ("system_type_mismatch", None)),
        {"voltage_bn_v": 0.0, "voltage_cn_v": 0.0, "current_b_a": 0.0, "current_c_a": 0.0,
         "voltage_ab_v": 231.0, "voltage_ca_v": 231.0, "voltage_bc_v": 0.0}),
    Row("mismatch-12-to-10", 12, _f(("voltage_missing", "bn"), ("system_type_mismatch", None)),
        {"voltage_bn_v": 0.0, "current_b_a": 0.0, "voltage_ab_v": 120.0}),
    Row("mismatch-31-to-11", 31, _f(("voltage_missing", "bc"), ("voltage_missing", "ca"),
                                    ("system_type_mismatch", None)),
        {"current_c_a": 0.0}, scale={"voltage_bc_v": 0.58, "voltage_ca_v": 0.58}),
    Row("mismatch-12-is-three-phase", 12, _f(("system_type_mismatch", None)),
        {"voltage_ab_v": 120.0 * math.sqrt(3)}),
    Row("no-mismatch-40-current-still-flows", 40, _f(("voltage_missing", "cn")),
        {"voltage_cn_v": 0.0, "voltage_bc_v": 231.0, "voltage_ca_v": 231.0}),
    # phase_loss (register 146, bits 8-10)
    *[Row(f"phase_loss-{t}", t, _f(("phase_loss", FIRST_V[t])), alarm_bits=(8,)) for t in ALL],
    Row("phase_loss-bit-c-unused-by-10", 10, NONE, alarm_bits=(10,)),
    Row("phase_loss-explained-by-missing-voltage", 40, _f(("voltage_missing", "cn")),
        {"voltage_cn_v": 0.0, "voltage_bc_v": 231.0, "voltage_ca_v": 231.0},
        alarm_bits=(10,)),
    # ct_over_range (bits 3-5, or above register 131)
    *[Row(f"ct_over_range-{t}", t, _f(("ct_over_range", "a")), {"current_a_a": 110.0})
      for t in ALL],
    Row("ct_over_range-bit-b", 40, _f(("ct_over_range", "b")), alarm_bits=(4,)),
    Row("ct_over_range-at-rating", 40, NONE, {"current_a_a": 99.0}),
    Row("ct_over_range-bit-c-unused-by-12", 12, NONE, alarm_bits=(5,)),
    # voltage_out_of_range (bits 0-2, or more than 15 % from nominal)
    *[Row(f"voltage_out_of_range-bit-{t}", t, _f(("voltage_out_of_range", FIRST_V[t])),
          alarm_bits=(0,)) for t in ALL],
    Row("voltage_out_of_range-12", 12, _f(("voltage_out_of_range", "an")),
        {"voltage_ab_v": 264.0}, scale={"voltage_an_v": 1.2}),
    Row("voltage_out_of_range-31", 31, _f(("voltage_out_of_range", "ab")),
        scale={"voltage_ab_v": 1.2}),
    Row("voltage_out_of_range-40", 40, _f(("voltage_out_of_range", "bn")),
        scale={"voltage_bn_v": 0.8}),
    Row("voltage_out_of_range-40-within-14pct", 40, NONE, scale={"voltage_bn_v": 0.86}),
    # With one voltage (10, 11), a voltage far from nominal reads as a wrong setting.
    Row("voltage_out_of_range-10-is-the-setting", 10, _f(("system_voltage_setting", None)),
        scale={"voltage_an_v": 1.2}),
    # voltage_imbalance (register 143)
    Row("voltage_imbalance-12", 12, _f(("voltage_imbalance", None)),
        settings={"phase_loss_imbalance_pct": 10}, scale={"voltage_an_v": 1.1,
                                                          "voltage_bn_v": 0.92}),
    Row("voltage_imbalance-31", 31, _f(("voltage_imbalance", None)),
        settings={"phase_loss_imbalance_pct": 10}, scale={"voltage_ab_v": 1.1,
                                                          "voltage_bc_v": 0.92}),
    Row("voltage_imbalance-40", 40, _f(("voltage_imbalance", None)),
        settings={"phase_loss_imbalance_pct": 10}, scale={"voltage_an_v": 1.1,
                                                          "voltage_cn_v": 0.92}),
    Row("voltage_imbalance-40-under-threshold", 40, NONE,
        scale={"voltage_an_v": 1.1, "voltage_cn_v": 0.92}),
    # system_voltage_setting (register 134 against the measured L-L, L-N for 10)
    *[Row(f"system_voltage_setting-{t}", t, _f(("system_voltage_setting", None)),
          settings={"system_voltage_v": round(SYSTEM_V[t] * 1.3)},
          status={"max_power_w": 1000.0}) for t in ALL],
    Row("system_voltage_setting-within-tolerance", 40, NONE,
        settings={"system_voltage_v": 440}),
    Row("system_voltage_setting-folds-phase-loss", 40, _f(("system_voltage_setting", None)),
        settings={"system_voltage_v": 480}, alarm_bits=(8, 9, 10)),
    # ct_wrong_phase (per-phase PF: types with a neutral and more than one CT)
    Row("ct_wrong_phase-12", 12, _f(("ct_wrong_phase", "b")), {"power_factor_b": 0.2}),
    Row("ct_wrong_phase-40", 40, _f(("ct_wrong_phase", "c")), {"power_factor_c": 0.15}),
    Row("ct_wrong_phase-40-pf-0.55", 40, NONE, {"power_factor_c": 0.55}),
    Row("ct_wrong_phase-40-little-current", 40, NONE,
        {"power_factor_c": 0.15, "current_c_a": 4.0}),
    Row("ct_wrong_phase-40-no-good-phase", 40, NONE,
        {"power_factor_a": 0.3, "power_factor_b": 0.3, "power_factor_c": 0.3}),
    Row("ct_wrong_phase-10-one-ct", 10, NONE, {"power_factor_a": 0.2}),
    # ct_no_current (info)
    Row("ct_no_current-12", 12, _f(("ct_no_current", "b")), {"current_b_a": 0.0}),
    Row("ct_no_current-31", 31, _f(("ct_no_current", "c")), {"current_c_a": 0.1}),
    Row("ct_no_current-40", 40, _f(("ct_no_current", "a")), {"current_a_a": 0.0}),
    Row("ct_no_current-40-nothing-loaded", 40, NONE,
        {"current_a_a": 0.0, "current_b_a": 0.0, "current_c_a": 0.0}),
    Row("ct_no_current-10-one-ct", 10, NONE, {"current_a_a": 0.0}),
    # frequency_out_of_range (bit 6, or outside 45-65 Hz)
    *[Row(f"frequency-{t}", t, _f(("frequency_out_of_range", None)), {"frequency_hz": 44.0})
      for t in ALL],
    Row("frequency-bit", 40, _f(("frequency_out_of_range", None)), alarm_bits=(6,)),
    Row("frequency-50hz", 40, NONE, {"frequency_hz": 50.0}),
    Row("frequency-64.9hz", 40, NONE, {"frequency_hz": 64.9}),
    # pulse_weight_too_small (bit 15, or the weight cannot follow register 135)
    *[Row(f"pulse_weight-{t}", t, _f(("pulse_weight_too_small", None)),
          settings={"pulse_wh": 10}, status={"max_power_w": 2_000_000.0}) for t in ALL],
    Row("pulse_weight-bit", 40, _f(("pulse_weight_too_small", None)), alarm_bits=(15,)),
    Row("pulse_weight-keeps-up", 40, NONE, settings={"pulse_wh": 10},
        status={"max_power_w": 1_800_000.0}),
    # Alarm bits the check leaves to their own entities.
    Row("low-power-factor-and-overrun-bits", 40, NONE, alarm_bits=(11, 12, 13, 14)),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_rule_table(row: Row) -> None:
    findings = check(reading_of(row))
    assert {f.key for f in findings} == row.expected
    for f in findings:
        assert f.severity is SEVERITIES[f.code]
        assert f.message and f.fix and f.message != f.fix


def test_every_code_has_a_row_and_every_row_type_is_covered() -> None:
    triggered = {code for row in ROWS for code, _ in row.expected}
    assert triggered == set(CODES)
    assert INFO_CODES == ("ct_no_current",)


def test_mismatch_suggests_a_system_type() -> None:
    by_id = {r.id: r for r in ROWS}
    for row_id, suggested in (("mismatch-40-to-12", 12), ("mismatch-40-to-10", 10),
                              ("mismatch-12-to-10", 10), ("mismatch-31-to-11", 11),
                              ("mismatch-12-is-three-phase", 40)):
        (finding,) = [f for f in check(reading_of(by_id[row_id]))
                      if f.code == "system_type_mismatch"]
        assert finding.as_dict()["suggested_system_type"] == suggested, row_id


def test_findings_are_listed_in_code_order() -> None:
    row = Row("several", 40, NONE, {"frequency_hz": 40.0, "current_a_a": 0.0},
              settings={"pulse_wh": 10}, status={"max_power_w": 2_000_000.0},
              alarm_bits=(8,))
    codes = [f.code for f in check(reading_of(row))]
    assert codes == sorted(codes, key=CODES.index)
    assert codes == ["phase_loss", "frequency_out_of_range", "pulse_weight_too_small",
                     "ct_no_current"]


# ---------------------------------------------------------------------------------------------
# The simulated meter: clean in every system type, and each fault gives its finding.


def sim_reading(meter: SimulatedMeter) -> WiringReading:
    from bridge.meters.series4000.setup import decode_setup

    config = meter.config_values()
    setup = decode_setup([config[r] for r in range(129, 155)])
    return WiringReading(setup, {k: v for k, v in meter.values.items() if v is not None})


@pytest.mark.parametrize("system_type", ALL)
def test_clean_simulated_meter_has_no_warning_or_error(system_type: int) -> None:
    meter = SimulatedMeter(1, system_type, clock=lambda: 0.0)
    for second in range(0, 600, 7):  # the load wanders for ten minutes: never a finding
        meter.tick(float(second))
        assert not check(sim_reading(meter)), (system_type, second)


SIM_FAULTS: list[tuple[int, str, set[tuple[str, str | None]]]] = [
    (40, "voltage_missing:c", {("voltage_missing", "cn")}),
    (12, "voltage_missing:b", {("voltage_missing", "bn")}),
    (31, "voltage_missing:a", {("voltage_missing", "ab"), ("voltage_missing", "ca")}),
    (40, "phase_lost:c", {("voltage_missing", "cn"), ("system_type_mismatch", None)}),
    (31, "phase_lost:b", {("voltage_missing", "ab"), ("voltage_missing", "bc"),
                          ("system_type_mismatch", None)}),
    (40, "phase_loss:b", {("phase_loss", "bn"), ("voltage_out_of_range", "bn")}),
    (31, "phase_loss:a", {("phase_loss", "ab")}),
    (40, "voltage_out_of_range:a", {("voltage_out_of_range", "an")}),
    (40, "voltage_imbalance", {("voltage_imbalance", None)}),
    (40, "system_voltage:480", {("system_voltage_setting", None)}),
    (12, "system_voltage:120", {("system_voltage_setting", None)}),  # the L-N value entered
    (40, "ct_wrong_phase:b", {("ct_wrong_phase", "b")}),
    (40, "ct_wrong_phase:a", {("ct_wrong_phase", "a")}),
    (40, "ct_over_range:c", {("ct_over_range", "c")}),
    (10, "ct_over_range:a", {("ct_over_range", "a")}),
    (40, "ct_no_current:c", {("ct_no_current", "c")}),
    (40, "frequency:40", {("frequency_out_of_range", None)}),
    (40, "pulse_weight_too_small", {("pulse_weight_too_small", None)}),
]


@pytest.mark.parametrize(("system_type", "fault", "expected"), SIM_FAULTS,
                         ids=[f"{t}-{f}" for t, f, _ in SIM_FAULTS])
def test_simulated_fault_gives_its_finding(system_type: int, fault: str,
                                           expected: set[tuple[str, str | None]]) -> None:
    meter = SimulatedMeter(1, system_type)
    apply_fault(meter, parse_fault(fault))
    assert {f.key for f in check(sim_reading(meter))} == expected


@pytest.mark.parametrize(("system_type", "text"), [
    (40, "no_such_fault"), (40, "voltage_missing"), (40, "voltage_missing:d"),
    (10, "voltage_missing:b"), (12, "ct_wrong_phase:b"), (40, "system_voltage:abc"),
    (40, "system_voltage:20"), (40, "frequency:"),
])
def test_bad_faults_are_refused_with_a_reason(system_type: int, text: str) -> None:
    meter = SimulatedMeter(1, system_type)
    with pytest.raises(FaultError, match=text.split(":", maxsplit=1)[0]):
        apply_fault(meter, parse_fault(text))


# ---------------------------------------------------------------------------------------------
# Holding findings over readings


def _finding(code: str, phase: str | None = None, message: str = "m") -> Finding:
    return Finding(code, SEVERITIES[code], phase, message, "fix")


A = _finding("voltage_missing", "cn")
B = _finding("frequency_out_of_range")


def _run(readings: list[list[Finding]], reads: int = HOLD_READS,
         hold: FindingHold | None = None) -> list[tuple[list[str], list[str], list[str]]]:
    """(active labels, raised, cleared) after each reading."""
    hold = hold or FindingHold()
    out = []
    for findings in readings:
        hold, changes = hold_step(hold, findings, reads)
        out.append(([f.label for f in hold.active], [f.label for f in changes.raised],
                    [f.label for f in changes.cleared]))
    return out


def test_hold_raises_after_consecutive_reads_and_clears_after_as_many() -> None:
    steps = _run([[A], [A], [A], [A], [], [], []], reads=3)
    assert steps == [
        ([], [], []), ([], [], []), (["voltage_missing_cn"], ["voltage_missing_cn"], []),
        (["voltage_missing_cn"], [], []), (["voltage_missing_cn"], [], []),
        (["voltage_missing_cn"], [], []), ([], [], ["voltage_missing_cn"]),
    ]


def test_hold_a_passing_change_neither_raises_nor_clears() -> None:
    assert all(not raised for _, raised, _ in _run([[A], [A], [], [A], [A], []], reads=3))
    active = _run([[A]] * 3 + [[], [], [A], [], []], reads=3)
    assert all(labels == ["voltage_missing_cn"] for labels, _, _ in active[2:])
    assert not any(cleared for _, _, cleared in active)


def test_hold_keeps_the_first_wording_and_tracks_findings_apart() -> None:
    hold = FindingHold()
    for _ in range(2):
        hold, _ = hold_step(hold, [A, B], reads=2)
    newer = replace(A, message="newer")
    hold, changes = hold_step(hold, [newer], reads=2)
    assert [f.message for f in hold.active] == ["m", "m"]  # the state does not churn
    assert not changes.raised and not changes.cleared
    hold, changes = hold_step(hold, [newer], reads=2)
    assert [f.label for f in changes.cleared] == ["frequency_out_of_range"]
    assert [f.label for f in hold.active] == ["voltage_missing_cn"]


def test_persistent_keeps_what_every_reading_has() -> None:
    assert persistent([[A, B], [A], [B, A]]) == (A,)
    assert persistent([[A, B]]) == (A, B)
    assert persistent([]) == ()
    assert persistent([[A], []]) == ()


def test_state_keys_and_blocking() -> None:
    info = _finding("ct_no_current", "c")
    assert not blocking([info]) and blocking([info, B])
    assert info.severity is Severity.INFO
    keys = state_keys([A, _finding("voltage_missing", "bn"), info])
    assert keys["wiring"] == ["voltage_missing", "ct_no_current"]
    assert keys["wiring_findings"][0] == "voltage_missing_cn: m Fix: fix"
    assert state_keys([]) == {"wiring": [], "wiring_findings": []}


def test_reading_ignores_settings_that_are_not_numbers() -> None:
    row = Row("no-system-voltage", 40, NONE)
    reading = reading_of(row)
    settings = dict(reading.setup.settings)
    del settings["system_voltage_v"]
    bare = WiringReading(replace(reading.setup, settings=settings), reading.values)
    assert not check(bare)


