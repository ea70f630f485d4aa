"""What a Modbus TCP client may read and write through the bridge (pure rules)."""

from __future__ import annotations

import pytest

from bridge.core.share_rules import (
    block_to_read,
    check_in_map,
    command_for_write,
    fresh_words,
    map_registers,
)
from bridge.errors import RequestRefused
from bridge.meters.profile import Write
from bridge.meters.series4000 import PROFILE
from bridge.modbus.server import TokenBucket
from bridge.sim.model import SimulatedMeter

MAP_REGISTERS = map_registers(PROFILE.register_map)

# (first register, count, in the map)
READS = [
    (257, 90, True),  # the float block
    (129, 26, True),  # the set-up block
    (1, 52, True),  # the integer block
    (7001, 1, True),  # firmware
    (345, 2, True),  # the last float
    (346, 2, False),  # one past the float block
    (53, 1, False),
    (200, 2, False),
    (7000, 2, False),
    (155, 1, False),
]


@pytest.mark.parametrize(("first", "count", "inside"), READS)
def test_reads_inside_the_map(first: int, count: int, inside: bool) -> None:
    if inside:
        check_in_map(first, count, MAP_REGISTERS)
    else:
        with pytest.raises(RequestRefused) as err:
            check_in_map(first, count, MAP_REGISTERS)
        assert err.value.code == 2 and "not in the meter's map" in err.value.reason


def test_both_words_of_a_float_are_in_the_map() -> None:
    assert {257, 258, 345, 346} <= MAP_REGISTERS and 347 not in MAP_REGISTERS


STORED = {257: (tuple(range(90)), 100.0), 261: ((70, 71), 101.0), 129: (tuple(range(26)), 90.0)}

# (first, count, now, max_age_s, expected)
FRESH = [
    (257, 2, 101.0, 2.0, (0, 1)),
    (261, 2, 101.5, 2.0, (70, 71)),  # both blocks fresh: the newer one wins
    (263, 2, 101.5, 2.0, (6, 7)),  # only the float block covers it
    (261, 2, 102.5, 2.0, (70, 71)),  # the float block is stale, the fast read is not
    (257, 2, 102.5, 2.0, None),  # stale
    (340, 10, 101.0, 2.0, None),  # beyond the stored block
    (130, 1, 91.0, 2.0, (1,)),
    (129, 30, 91.0, 2.0, None),
    (1, 2, 101.0, 2.0, None),  # never read by the poller
]


@pytest.mark.parametrize(("first", "count", "now", "max_age", "expected"), FRESH)
def test_fresh_words(first: int, count: int, now: float, max_age: float,
                     expected: tuple[int, ...] | None) -> None:
    assert fresh_words(STORED, first, count, now, max_age) == expected


PLANNED = [(257, 90), (261, 2), (129, 26)]

# (first, count, block read)
BLOCKS = [
    (257, 2, (257, 90)),
    (261, 2, (261, 2)),  # the smallest block that covers it
    (263, 1, (257, 90)),
    (130, 1, (129, 26)),
    (1, 4, (1, 4)),  # not read by the poller: exactly the request
    (340, 7, (257, 90)),
    (345, 4, (345, 4)),
]


@pytest.mark.parametrize(("first", "count", "expected"), BLOCKS)
def test_block_to_read(first: int, count: int, expected: tuple[int, int]) -> None:
    assert block_to_read(first, count, PLANNED) == expected


SETUP = PROFILE.decode_setup([SimulatedMeter(1, 40).registers()[r] for r in range(129, 155)])

# (register, value, setting, payload)
WRITES = [
    (131, 200, "ct_primary_a", b"200"),
    (133, 150, "pt_ratio", b"1.5"),
    (133, 100, "pt_ratio", b"1"),
    (132, 3, "ct_output", b"3"),
    (130, 31, "system_type", b"31"),
    (137, 1, "display_units", b"1"),
    (144, 10000, "pulse_wh", b"10000"),
    (150, 0, "demand_subinterval_s", b"0"),
    (129, 30078, "reset_energy", b"PRESS"),
    (129, 16498, "reset_pulse_counters", b"PRESS"),
]


@pytest.mark.parametrize(("reg", "raw", "key", "payload"), WRITES)
def test_a_write_is_the_mqtt_command_for_the_register(reg: int, raw: int, key: str,
                                                      payload: bytes) -> None:
    assert command_for_write(PROFILE, reg, raw) == (key, payload)
    # ...and the command path turns it back into the same register write.
    write = PROFILE.parse_command(key, payload, SETUP)
    assert isinstance(write, Write) and (write.reg, write.value) == (reg, raw)


# (register, value, exception code)
REFUSED_WRITES = [
    (129, 5, 3),  # not a command value
    (135, 1, 1),  # read-only: theoretical maximum power
    (138, 0, 1),  # a scale register
    (257, 0, 1),  # a measurement
    (7001, 0, 1),
    (200, 0, 2),  # outside the map
    (400, 1, 2),
]


@pytest.mark.parametrize(("reg", "raw", "code"), REFUSED_WRITES)
def test_writes_refused_before_the_command_path(reg: int, raw: int, code: int) -> None:
    with pytest.raises(RequestRefused) as err:
        command_for_write(PROFILE, reg, raw)
    assert err.value.code == code


def test_every_setting_register_is_writable_through_the_server() -> None:
    writable = {r.reg for r in PROFILE.register_map if r.writable}
    settings = {s.key: s.reg for s in PROFILE.settings}
    for reg in writable - {PROFILE.command_register}:
        key, _ = command_for_write(PROFILE, reg, 1)
        assert settings[key] == reg


def test_token_bucket() -> None:
    bucket = TokenBucket(rate_per_s=2.0, burst=2.0, tokens=2.0, updated_at=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.take(0.5) and not bucket.take(0.5)
    assert bucket.take(10.0) and bucket.take(10.0) and not bucket.take(10.0)  # burst caps it
