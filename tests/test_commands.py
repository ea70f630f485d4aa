"""Command validation (pure): every setting, cross-register rules, buttons, fuzzing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.commands import Rejection, Write, parse_command, parse_number
from bridge.meters.series4000.setup import MeterSetup, decode_setup
from bridge.sim.model import SimulatedMeter


def setup_of(**changes: int) -> MeterSetup:
    meter = SimulatedMeter(1, 40)
    for key, value in changes.items():
        setattr(meter.setup, key, value)
    image = meter.registers()
    return decode_setup([image[r] for r in range(129, 155)])


SETUP = setup_of()  # type 40, 100 A, 398 V, PT 1.00, 1000 Wh per pulse


@pytest.mark.parametrize(("key", "payload", "reg", "value"), [
    ("system_type", b"10", 130, 10),
    ("system_type", b"3-phase delta 3-wire (31)", 130, 31),
    ("system_type", b"split phase 3-wire (12)", 130, 12),  # labels are case-insensitive
    ("ct_primary_a", b"200", 131, 200),
    ("ct_primary_a", b" 32000 ", 131, 32000),
    ("ct_primary_a", b"150.0", 131, 150),
    ("ct_output", b"0.333V", 132, 3),
    ("ct_output", b"1V", 132, 1),
    ("ct_output", b"3", 132, 3),
    ("pt_ratio", b"2.5", 133, 250),
    ("pt_ratio", b"1.2", 133, 120),
    ("system_voltage_v", b"480", 134, 480),
    ("pulse_wh", b"100", 144, 100),
    ("demand_subintervals", b"6", 149, 6),
    ("demand_subinterval_s", b"0", 150, 0),
    ("demand_subinterval_s", b"10", 150, 10),
    ("phase_loss_voltage_pct", b"1", 142, 1),
    ("phase_loss_imbalance_pct", b"99", 143, 99),
    ("display_units", b"IEC", 137, 0),
    ("reset_energy", b"PRESS", 129, 30078),
    ("reset_pulse_counters", b"press", 129, 16498),
    ("new_demand_interval", b"PRESS", 129, 21211),
    ("reset_max_demand", b"PRESS", 129, 21212),
])
def test_valid_commands(key: str, payload: bytes, reg: int, value: int) -> None:
    result = parse_command(key, payload, SETUP)
    assert isinstance(result, Write), result
    assert (result.reg, result.value) == (reg, value)


@pytest.mark.parametrize(("key", "payload", "error"), [
    ("system_type", b"41", "must be one of"),
    ("system_type", b"", "empty payload"),
    ("ct_primary_a", b"0", "must be 1..32000 A"),
    ("ct_primary_a", b"32001", "must be 1..32000 A"),
    ("ct_primary_a", b"100.5", "must be a multiple of 1 A"),
    ("ct_primary_a", b"1e3", "must be a plain decimal number"),
    ("ct_primary_a", b"nan", "must be a plain decimal number"),
    ("ct_primary_a", b"inf", "must be a plain decimal number"),
    ("ct_primary_a", b"0x10", "must be a plain decimal number"),
    ("ct_primary_a", b"1,000", "must be a plain decimal number"),
    ("ct_primary_a", "１００".encode(), "must be a plain decimal number"),  # full-width digits
    ("ct_primary_a", b"\xff\xfe", "payload must be UTF-8 text"),
    ("ct_primary_a", b"1" * 65, "payload must be UTF-8 text of at most 64 bytes"),
    ("ct_output", b"5V", "must be one of '1V', '0.333V'"),
    ("pt_ratio", b"0.001", "must be 0.01..320"),
    ("pt_ratio", b"1.005", "must be a multiple of 0.01"),
    ("system_voltage_v", b"81", "must be 82..32000 V"),
    ("system_voltage_v", b"700", "system voltage / PT ratio = 700.0 V"),
    ("demand_subinterval_s", b"5", "1..9 s is not allowed by the meter"),
    ("demand_subintervals", b"7", "must be 1..6"),
    ("phase_loss_voltage_pct", b"100", "must be 1..99 %"),
    ("display_units", b"metric", "must be one of 'IEC', 'IEEE'"),
    ("reset_energy", b"1", "a button takes the payload PRESS"),
    ("reset_energy", b"ON", "a button takes the payload PRESS"),
    ("colour", b"red", "unknown setting; known: system_type"),
])
def test_rejected_commands(key: str, payload: bytes, error: str) -> None:
    result = parse_command(key, payload, SETUP)
    assert isinstance(result, Rejection), result
    assert result.error.startswith(error) or error in result.error, result.error


# The manual's order for a PT install: PT ratio first (taken whatever the current voltage),
# then the system voltage, checked against the new ratio. Each row: the set-up before, the
# command, whether it becomes a write, and what the result or note must say.
PT_INSTALL = [
    # 480 V without PTs -> 24 kV through 60:1 PTs (400 V secondary).
    ({"system_voltage_v": 480, "pt_ratio_x100": 100}, "pt_ratio", b"60", True,
     "system voltage 480 V / PT ratio 60 = 8.0 V is outside 82..660 V: set system_voltage_v "
     "next (4920..32000 V with this PT ratio)"),
    ({"system_voltage_v": 480, "pt_ratio_x100": 6000}, "system_voltage_v", b"24000", True, None),
    # The voltage first is still refused, and the error says what the ratio allows.
    ({"system_voltage_v": 480, "pt_ratio_x100": 100}, "system_voltage_v", b"24000", False,
     "system voltage / PT ratio = 24000.0 V; the meter needs 82..660 V: with PT ratio 1 it "
     "must be 82..660 V (set pt_ratio first if the PTs differ)"),
    # A voltage the new ratio does not allow is refused after the ratio too.
    ({"system_voltage_v": 480, "pt_ratio_x100": 6000}, "system_voltage_v", b"48000", False,
     "must be 82..32000 V"),
    ({"system_voltage_v": 480, "pt_ratio_x100": 6000}, "system_voltage_v", b"4800", False,
     "with PT ratio 60 it must be 4920..32000 V"),
    # A ratio that keeps the voltage in range needs no next step.
    ({"system_voltage_v": 1600, "pt_ratio_x100": 100}, "pt_ratio", b"4", True, None),
    # Back to no PTs from a PT install: the ratio first, then the voltage.
    ({"system_voltage_v": 24000, "pt_ratio_x100": 6000}, "pt_ratio", b"1", True,
     "system voltage 24000 V / PT ratio 1 = 24000.0 V is outside 82..660 V: set "
     "system_voltage_v next (82..660 V with this PT ratio)"),
    ({"system_voltage_v": 24000, "pt_ratio_x100": 100}, "system_voltage_v", b"480", True, None),
    # A ratio so small that no voltage fits is taken (its own range) but says so.
    ({"system_voltage_v": 480, "pt_ratio_x100": 100}, "pt_ratio", b"0.1", True,
     "no system voltage fits this PT ratio: set pt_ratio again"),
    # The PT ratio's own range still holds.
    ({"system_voltage_v": 480, "pt_ratio_x100": 100}, "pt_ratio", b"320.01", False,
     "must be 0.01..320"),
]


@pytest.mark.parametrize(("before", "key", "payload", "accepted", "message"), PT_INSTALL)
def test_pt_install_in_the_manuals_order(before: dict[str, int], key: str, payload: bytes,
                                         accepted: bool, message: str | None) -> None:
    result = parse_command(key, payload, setup_of(**before))
    if accepted:
        assert isinstance(result, Write), result
        assert result.note == message or (message is not None and result.note is not None
                                          and message in result.note), result.note
    else:
        assert isinstance(result, Rejection), result
        assert message is not None and message in result.error, result.error


def test_the_simulated_meter_takes_the_same_pt_install() -> None:
    """The simulator's rules are the manual's: it takes and refuses the same writes."""
    for before, key, payload, accepted, _ in PT_INSTALL:
        meter = SimulatedMeter(1, 40)
        for name, value in before.items():
            setattr(meter.setup, name, value)
        parsed = parse_command(key, payload, setup_of(**before))
        if isinstance(parsed, Write):
            assert meter.write(parsed.reg, [parsed.value]) is None, (key, payload)
        else:  # what the bridge refuses in range, the meter refuses too
            setting = s4k.SETTINGS_BY_KEY[key]
            raw = round(float(payload) / setting.factor)
            if raw <= 0xFFFF:
                assert meter.write(setting.reg, [raw]) is not None, (key, payload)
        assert isinstance(parsed, Write) is accepted


def test_pt_ratio_allows_a_high_system_voltage_with_a_pt() -> None:
    with_pt = setup_of(pt_ratio_x100=400, system_voltage_v=1600)
    assert isinstance(parse_command("system_voltage_v", b"2400", with_pt), Write)  # 600 V
    assert isinstance(parse_command("system_voltage_v", b"2800", with_pt), Rejection)  # 700 V


def test_pulse_weight_must_follow_the_maximum_power() -> None:
    big = setup_of(ct_primary_a=5000, system_voltage_v=600)  # sqrt3*600*5000 = 5.2 MW
    result = parse_command("pulse_wh", b"10", big)
    assert isinstance(result, Rejection)
    assert "cannot follow the theoretical maximum power of 5196 kW" in result.error
    assert "use 100 Wh or more" in result.error
    assert isinstance(parse_command("pulse_wh", b"100", big), Write)


def test_demand_commands_at_most_every_10_s() -> None:
    assert isinstance(parse_command("new_demand_interval", b"PRESS", SETUP, 100.0, 85.0), Write)
    result = parse_command("reset_max_demand", b"PRESS", SETUP, 100.0, 95.0)
    assert isinstance(result, Rejection) and "try again in 5 s" in result.error
    assert isinstance(parse_command("reset_energy", b"PRESS", SETUP, 100.0, 95.0), Write)


def test_settings_need_a_read_setup_but_buttons_do_not() -> None:
    assert isinstance(parse_command("ct_primary_a", b"100", None), Rejection)
    assert isinstance(parse_command("reset_energy", b"PRESS", None), Write)


def test_rejection_echo_is_short_and_printable() -> None:
    result = parse_command("ct_primary_a", b"\x00\x01abc" + b"x" * 1000, SETUP)
    assert isinstance(result, Rejection)
    assert len(result.requested) <= 70 and result.requested.isprintable()


def valid_oracle(key: str, value: int, cross: bool = True) -> bool:
    """An independent statement of what the meter accepts, per register value (with the
    set-up of SETUP: 398 V, PT 1.00, for the rules that span registers)."""
    return {
        "system_type": value in (10, 11, 12, 31, 40),
        "ct_primary_a": 1 <= value <= 32000,
        "ct_output": value in (1, 3),
        "pt_ratio": 1 <= value <= 32000,  # whatever the voltage: the manual sets it first
        "system_voltage_v": 82 <= value <= (660 if cross else 32000),
        "pulse_wh": value in (10, 100, 1000, 10000),
        "demand_subintervals": 1 <= value <= 6,
        "demand_subinterval_s": value == 0 or 10 <= value <= 32767,
        "phase_loss_voltage_pct": 1 <= value <= 99,
        "phase_loss_imbalance_pct": 1 <= value <= 99,
        "display_units": value in (0, 1),
    }[key]


PAYLOADS = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=40).map(str.encode),
    st.integers(-10**12, 10**12).map(lambda i: str(i).encode()),
    st.decimals(allow_nan=True, allow_infinity=True, places=3).map(lambda d: str(d).encode()),
    st.floats().map(lambda f: repr(f).encode()),
    st.sampled_from([b"", b" ", b"PRESS", b"NaN", b"-0", b"+5", b".5", b"5.", b"\x00",
                     "４０".encode(), b"1" * 10**6]),
)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from([s.key for s in s4k.SETTINGS]), PAYLOADS)
def test_fuzz_only_valid_values_become_writes(key: str, payload: bytes) -> None:
    result = parse_command(key, payload, SETUP)
    if isinstance(result, Write):
        assert valid_oracle(key, result.value), (key, payload, result)
    else:
        assert result.error


@given(st.text(max_size=30))
def test_parse_number_never_accepts_non_finite(text: str) -> None:
    number = parse_number(text)
    assert number is None or number.is_finite()
    if number is not None:
        assert Decimal(text.strip()) == number
