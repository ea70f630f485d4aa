"""The live bus budget, table by table: the meters' reaction measured on the line
(bridge.modbus.links), the budget priced with it (bridge.core.budget), each meter's real refresh
(bridge.core.refresh), what the status shows of them (bridge.core.status) and the service's
log line at start."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import pytest

from bridge.app.service import log_budgets
from bridge.config import BusConfig, parse_config
from bridge.core import status
from bridge.core.budget import (
    ANSWER_FRAME_CHARS,
    DEFAULT_METER_REACTION_S,
    DEFAULT_REACTION_S,
    LIMIT,
    MASTER_TURNAROUND_S,
    REQUEST_CHARS,
    MeterLoad,
    bus_plan,
    coarsest_known,
    live_budget,
    planned,
)
from bridge.core.refresh import (
    GAPS_KEPT,
    NO_READS,
    REFRESH_WINDOW_S,
    ReadGaps,
    note_read,
    refresh_s,
)
from bridge.meters.series4000 import PROFILE
from bridge.modbus.links import meter_reaction_s


def bus(meters: int, fast_s: float | None, full_s: float, baudrate: int = 19200,
        transport: str = "rtu_over_tcp", parity: str = "N") -> BusConfig:
    tiers = {"fast_interval": fast_s, "fast_keys": ["power_w"]} if fast_s else {}
    config = parse_config({"buses": [{
        "name": "panel", "transport": transport, "host": "127.0.0.1", "baudrate": baudrate,
        "parity": parity, "meters": [{"name": f"m{u}", "unit": u, "poll_interval": full_s,
                                      "config_interval": 60, **tiers}
                                     for u in range(1, meters + 1)]}]}, env={})
    return config.buses[0]


# -- the reaction measured on the line --------------------------------------------------------

# (seconds from the request written to the answer's last byte, request and answer characters,
# character time, t3.5, the meter's reaction beyond t3.5)
REACTIONS = [
    # 19200 8N1, a read of 2 registers: 8 + 9 characters (8.85 ms), t3.5 1.82 ms, 10 ms after.
    (8 * 10 / 19200 + 9 * 10 / 19200 + 3.5 * 10 / 19200 + 0.010, 8, 9, 10 / 19200,
     3.5 * 10 / 19200, 0.010),
    # 9600 8E1: 11-bit characters, a 90-register answer, a meter right at t3.5.
    (8 * 11 / 9600 + 185 * 11 / 9600 + 3.5 * 11 / 9600, 8, 185, 11 / 9600, 3.5 * 11 / 9600,
     0.0),
    # Sooner than the wire allows (a clock's jitter): never below 0.
    (0.001, 8, 9, 10 / 19200, 3.5 * 10 / 19200, 0.0),
    # 115200: t3.5 fixed at 1.75 ms, 3 ms of a gateway's latency on top.
    (17 * 10 / 115200 + 0.00175 + 0.003, 8, 9, 10 / 115200, 0.00175, 0.003),
]


@pytest.mark.parametrize(("elapsed", "request_chars", "answer", "char", "silence", "expected"),
                         REACTIONS)
def test_meter_reaction_beyond_t35(elapsed: float, request_chars: int, answer: int, char: float,
                                   silence: float, expected: float) -> None:
    assert meter_reaction_s(elapsed, request_chars, answer, char, silence) == \
        pytest.approx(expected, abs=1e-9)


# -- the budget priced with it ---------------------------------------------------------------

def wire_share(loads: Sequence[MeterLoad], char: float, t35: float, reaction: float) -> float:
    """The line's share from the wire formula: each read its characters, two silences and the
    reaction, at its tier's rate (a full read takes a fast read's turn)."""
    def read(n: int) -> float:
        return (REQUEST_CHARS + ANSWER_FRAME_CHARS + 2 * n) * char + 2 * t35 + reaction

    total = 0.0
    for load in loads:
        full = sum(read(n) for n in load.full_blocks)
        fast = sum(read(n) for n in load.fast_blocks)
        config = sum(read(n) for n in load.config_blocks)
        assert load.fast_s is not None
        total += fast / load.fast_s + (full - fast) / load.full_s + config / load.config_s
    return total


@pytest.mark.parametrize(("meters", "fast_s", "full_s", "baudrate", "parity", "reaction_s"), [
    (40, 0.9, 29.0, 19200, "N", 0.010),  # a slow meter: the 40-meter line no longer fits
    (40, 0.9, 29.0, 19200, "N", DEFAULT_METER_REACTION_S),
    (63, 1.0, 30.0, 19200, "N", 0.0005),
    (10, 0.5, 10.0, 9600, "E", 0.002),
    (63, 1.0, 30.0, 38400, "N", 0.0),
])
def test_the_share_rises_with_the_meters_reaction(meters: int, fast_s: float, full_s: float,
                                                  baudrate: int, parity: str,
                                                  reaction_s: float) -> None:
    config = bus(meters, fast_s, full_s, baudrate, parity=parity)
    live = live_budget(config, PROFILE, None, reaction_s)
    plan = bus_plan(config, PROFILE)
    assert live is not None and plan is not None
    bits = 11 if parity != "N" else 10
    char = bits / baudrate
    t35 = 0.00175 if baudrate > 19200 else 3.5 * char
    expected = wire_share(plan.loads, char, t35, MASTER_TURNAROUND_S + reaction_s)
    assert live.share == pytest.approx(expected, rel=1e-9)
    assert live.fast_s == (fast_s,) and live.full_s == (full_s,)
    assert live.meter_reaction_s == reaction_s
    # The line keeps the configured period where it fits, else a longer one that does.
    if live.share <= LIMIT:
        assert live.achievable_fast_s == (fast_s,)
    else:
        assert live.achievable_fast_s[0] > fast_s


def test_the_40_meter_line_with_10_ms_meters() -> None:
    config = bus(40, 0.9, 29.0)
    quick, slow = (live_budget(config, PROFILE, None, r) for r in (None, 0.010))
    assert quick is not None and slow is not None
    # Per second every meter makes 1/0.9 fast reads (a full one in place of every 29 s'th)
    # and 1/60 set-up reads: each costs the extra reaction.
    reads_per_s = 40 * (1 / 0.9 + 1 / 60)
    assert slow.share - quick.share == pytest.approx(
        reads_per_s * (0.010 - DEFAULT_METER_REACTION_S), rel=1e-9)
    assert quick.share < LIMIT < slow.share
    assert quick.achievable_fast_s == (0.9,) and slow.achievable_fast_s[0] > 0.9


def test_until_measured_the_default_prices_the_line_as_check_config() -> None:
    config = bus(63, 1.0, 30.0)
    live = live_budget(config, PROFILE, None, None)
    plan = bus_plan(config, PROFILE)
    assert live is not None and plan is not None and live.meter_reaction_s is None
    assert live.share == plan.result.share
    assert MASTER_TURNAROUND_S + DEFAULT_METER_REACTION_S == DEFAULT_REACTION_S == 0.0011
    assert live_budget(bus(3, 1.0, 30.0, transport="tcp"), PROFILE, None, 0.01) is None


@pytest.mark.parametrize(("scales", "expected"), [
    ([], None),
    ([{140: -3}, None], None),  # a meter not set up yet: its scales are unknown
    ([{140: -3}, {140: -2}], {140: -2}),  # the coarser step
    ([{140: -3, 141: -1}, {140: -4, 141: 0}], {140: -3, 141: 0}),
])
def test_coarsest_known_scales(scales: list[dict[int, int] | None],
                               expected: dict[int, int] | None) -> None:
    assert coarsest_known(scales) == expected


def test_the_integer_fast_tier_lowers_the_share_where_the_scales_allow_it() -> None:
    config = bus(63, 1.0, 30.0)
    floats, integers = (live_budget(config, PROFILE, s, None) for s in (None, {140: -3}))
    assert floats is not None and integers is not None
    assert integers.share < floats.share


# -- the real refresh ---------------------------------------------------------------------------

def gaps_of(times: Sequence[float]) -> ReadGaps:
    gaps = NO_READS
    for at in times:
        gaps = note_read(gaps, at)
    return gaps


@pytest.mark.parametrize(("reads", "now", "expected"), [
    ([], 10.0, None),
    ([5.0], 10.0, None),  # one read: no gap yet
    ([1.0, 2.0, 3.0, 4.0], 4.5, 1.0),
    ([1.0, 2.5, 3.0, 3.2], 3.3, 1.5),  # the longest, not the last
    ([1.0, 2.0, 3.0], 7.0, 4.0),  # no read for 4 s: that is the refresh now
    # A 5 s gap ended at 10 s, then a read every second: within the minute it is the
    # refresh, a minute later it has left the window.
    ([5.0, 10.0, *[10.0 + i for i in range(1, 60)]], 69.5, 5.0),
    ([5.0, 10.0, *[10.0 + i for i in range(1, 61)]], 70.5, 1.0),
])
def test_refresh_is_the_longest_gap_of_the_last_minute(reads: list[float], now: float,
                                                       expected: float | None) -> None:
    result = refresh_s(gaps_of(reads), now)
    assert result == (None if expected is None else pytest.approx(expected))


def test_the_refresh_keeps_few_gaps() -> None:
    steady = gaps_of([i * 0.5 for i in range(1000)])
    assert len(steady.gaps) <= 2
    # Ever shorter gaps: at most GAPS_KEPT, the longest still there.
    times, at = [], 0.0
    for i in range(25):
        at += 2.0 - i * 0.01
        times.append(at)
    shrinking = gaps_of(times)
    assert len(shrinking.gaps) == GAPS_KEPT
    assert refresh_s(shrinking, at) == pytest.approx(2.0 - 0.01)
    assert at < REFRESH_WINDOW_S + 2.0


# -- what the status shows ----------------------------------------------------------------------

def test_budget_status() -> None:
    assert status.budget_status(None) is None
    live = live_budget(bus(63, 1.0, 30.0), PROFILE, None, 0.0004321)
    assert live is not None
    shown = status.budget_status(live)
    assert shown == {"fast_interval_s": [1.0], "poll_interval_s": [30.0],
                     "share_needed": round(live.share, 4), "limit": LIMIT,
                     "fast_achievable_s": [round(live.achievable_fast_s[0], 3)],
                     "meter_reaction_ms": 0.43}
    unmeasured = status.budget_status(live_budget(bus(3, 1.0, 30.0), PROFILE, None, None))
    assert unmeasured is not None and unmeasured["meter_reaction_ms"] is None


# -- logged at start ------------------------------------------------------------------------------

@pytest.mark.parametrize(("config", "level"), [
    (bus(40, 0.9, 29.0), logging.INFO),
    (bus(63, 1.0, 30.0), logging.WARNING),
    (bus(3, 1.0, 30.0, transport="tcp"), None),  # Modbus TCP: no line, no budget
])
def test_the_service_logs_each_lines_budget(caplog: pytest.LogCaptureFixture,
                                            config: BusConfig, level: int | None) -> None:
    with caplog.at_level(logging.INFO, logger="bridge.app.service"):
        log_budgets([config], PROFILE)
    records = [r for r in caplog.records if r.name == "bridge.app.service"]
    if level is None:
        assert records == []
    else:
        assert [(r.levelno, r.getMessage()) for r in records] == \
            [(level, planned(config, PROFILE))]
