"""The bus budget, table by table (bridge.core.budget)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bridge.config import parse_config
from bridge.core.budget import (
    LineTiming,
    MeterLoad,
    budget,
    bus_plan,
    describe,
    line_timing,
)
from bridge.meters.series4000 import PROFILE
from tests.conftest import run_cli

#: 19200 8N1: 10 bits a character, t3.5 of 3.5 characters, 1.1 ms reaction.
LINE = LineTiming(10 / 19200, 3.5 * 10 / 19200, 0.0011)


def tiered(count: int, fast_s: float | None, full_s: float) -> list[MeterLoad]:
    return [MeterLoad(full_s, fast_s, 3600.0, (90,), (2,), (26,))] * count


def test_a_read_costs_its_characters_two_silences_and_the_reaction() -> None:
    # A float power read: 17 characters (8.85 ms) + 2 x 1.82 ms + 1.1 ms.
    assert LINE.read_s(2) == pytest.approx(0.0136, abs=1e-4)
    # The full read: 193 characters (100.5 ms) + 3.6 ms + 1.1 ms.
    assert LINE.read_s(90) == pytest.approx(0.1053, abs=1e-4)


@pytest.mark.parametrize(("loads", "share", "stretch"), [
    # 40 meters, power every 0.9 s, everything every 29 s: about three quarters of the line.
    (tiered(40, 0.9, 29.0), 0.74, 1.0),
    # 63 meters, power every 1.0 s, everything every 30 s: 63 x 13.6 ms of power reads
    # (0.857) + 63 x (105.3 - 13.6) ms / 30 of full reads in their place (0.193): more than
    # the line; the fast tier stretches to 0.857 / (0.97 - 0.193) = 1.10.
    (tiered(63, 1.0, 30.0), 1.05, 1.10),
    # No fast tier: full reads only, 10 meters every 5 s.
    (tiered(10, None, 5.0), 0.21, 1.0),
    # Full reads alone more than the line: the fast tier stretches to the full period.
    (tiered(63, 1.0, 5.0), 2.01, 5.0),
])
def test_budget(loads: list[MeterLoad], share: float, stretch: float) -> None:
    result = budget(loads, LINE)
    assert result.share == pytest.approx(share, abs=0.01)
    assert result.fast_stretch == pytest.approx(stretch, abs=0.01)


def test_polling_as_fast_as_the_line_allows_needs_all_of_it() -> None:
    assert budget(tiered(3, None, 0.0), LINE).share >= 1.0


def test_describe_says_what_fits() -> None:
    loads = tiered(63, 1.0, 30.0)
    config = parse_config({"buses": [{"name": "panel", "transport": "rtu_over_tcp",
                                      "host": "127.0.0.1",
                                      "meters": [{"name": "m", "unit": 1}]}]}, env={})
    text = describe(config.buses[0], loads, LINE, budget(loads, LINE))
    assert text.startswith("bus panel: 63 meters need 105% of the line at 19200 8N1: fast "
                           "tier every 1 s, everything every 30 s; more than the 97% it can "
                           "carry: at best the fast tier every 1.1 s")


@pytest.mark.parametrize(("bus", "char_s", "silence_s"), [
    ({"transport": "rtu", "device": "/dev/ttyUSB0", "baudrate": 9600, "parity": "E"},
     11 / 9600, 3.5 * 11 / 9600),
    ({"transport": "rtu_over_tcp", "host": "127.0.0.1", "baudrate": 38400},
     10 / 38400, 0.00175),
    ({"transport": "tcp", "host": "127.0.0.1"}, None, None),
])
def test_line_timing(bus: dict[str, object], char_s: float | None,
                     silence_s: float | None) -> None:
    config = parse_config({"buses": [{"name": "b", "meters": [{"name": "m", "unit": 1}],
                                      **bus}]}, env={})
    timing = line_timing(config.buses[0])
    if char_s is None:
        assert timing is None
    else:
        assert timing is not None
        assert timing.char_s == pytest.approx(char_s)
        assert timing.silence_s == pytest.approx(silence_s)


@pytest.mark.parametrize(("meters", "fast_s", "full_s", "expected"), [
    (40, 0.9, 29, "bus panel: 40 meters need 76% of the line at 19200 8N1: fast tier every "
                  "0.9 s, everything every 29 s\n"),
    (63, 1.0, 30, "bus panel: 63 meters need 105% of the line at 19200 8N1: fast tier every "
                  "1 s, everything every 30 s; more than the 97% it can carry: at best the "
                  "fast tier every 1.11 s\n"),
])
async def test_check_config_prints_the_budget(tmp_path: Path, meters: int, fast_s: float,
                                              full_s: float, expected: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1"},
        "buses": [{"name": "panel", "transport": "rtu_over_tcp", "host": "127.0.0.1",
                   "baudrate": 19200, "meters": [
                       {"name": f"m{u}", "unit": u, "poll_interval": full_s,
                        "fast_interval": fast_s, "fast_keys": ["power_w"],
                        "config_interval": 60 if meters == 40 else 600}
                       for u in range(1, meters + 1)]}]}))
    code, out, _ = await run_cli("check-config", str(path))
    assert code == 0
    assert f"  {expected}" in out


@pytest.mark.parametrize(("meters", "fast_s", "full_s", "stretch", "achievable"), [
    (40, 0.9, 29, 1.0, (0.9,)),
    (63, 1.0, 30, 1.108, (1.108,)),  # the figure check-config prints as "at best 1.11 s"
])
def test_bus_plan_gives_the_achievable_fast_period(meters: int, fast_s: float, full_s: float,
                                                   stretch: float,
                                                   achievable: tuple[float, ...]) -> None:
    config = parse_config({"buses": [{
        "name": "panel", "transport": "rtu_over_tcp", "host": "127.0.0.1", "baudrate": 19200,
        "meters": [{"name": f"m{u}", "unit": u, "poll_interval": full_s,
                    "fast_interval": fast_s, "fast_keys": ["power_w"], "config_interval": 600}
                   for u in range(1, meters + 1)]}]}, env={})
    plan = bus_plan(config.buses[0], PROFILE)
    assert plan is not None
    assert plan.result.fast_stretch == pytest.approx(stretch, abs=5e-4)
    assert plan.achievable_fast_s() == pytest.approx(achievable, abs=5e-4)
